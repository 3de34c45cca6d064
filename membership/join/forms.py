"""One form per step of the parent journey."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, RadioField, StringField, TelField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length
from wtforms.widgets import HiddenInput

from .. import validation
from ..forms_common import cleaned

RELATIONSHIPS = [SelectChoice("parent", "Parent"), SelectChoice("carer", "Carer or guardian")]


class CodeForm(FlaskForm):
    """Step 2: the code printed on the school's letter."""

    code = StringField(
        "Code from the school letter",
        # Spaces alone are no code at all: say so, rather than that the code was not accepted.
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[
            DataRequired("Enter the code from the school letter"),
            Length(max=40, message="That code is too long"),
        ],
    )


class NoCodeForm(FlaskForm):
    """Step 2 without a code: name the child and a moderator will check."""

    child_name = StringField("Your child’s first name and surname initial", validators=[cleaned(validation.child_name)])


class DetailsForm(FlaskForm):
    """Step 3: who the parent is and how to reach them."""

    name = StringField("Your full name", validators=[cleaned(validation.person_name)])
    relationship = RadioField(
        "Are you the child’s parent or carer?",
        choices=RELATIONSHIPS,
        validators=[InputRequired("Select whether you are the child’s parent or carer")],
        invalid_choice_message="Select whether you are the child’s parent or carer",
    )
    email = EmailField("Email address", validators=[cleaned(validation.email)])
    mobile = TelField("Mobile number (optional)", validators=[cleaned(validation.mobile)])


class AgreeForm(FlaskForm):
    """Step 4: the two separate statements, each ticked on its own."""

    coc_version = IntegerField(widget=HiddenInput())
    notice_version = IntegerField(widget=HiddenInput())
    agree_coc = BooleanField(validators=[InputRequired("Tick the box to agree to the code of conduct")])
    acknowledge_notice = BooleanField(
        validators=[InputRequired("Tick the box to confirm you have read the data notice")]
    )


class ConfirmForm(FlaskForm):
    """A button and nothing else (resend an email, open the group)."""
