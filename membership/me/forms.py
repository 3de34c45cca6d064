"""One form per /me/ screen."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField
from wtforms.validators import InputRequired

from .. import validation
from ..forms_common import cleaned


class EmailForm(FlaskForm):
    """The address a parent joined with, to send them a sign-in link."""

    email = EmailField("Enter the email address you joined with", validators=[cleaned(validation.email)])


class ConfirmForm(FlaskForm):
    """A button and nothing else (sign in, sign out, leave a group)."""


class EraseForm(FlaskForm):
    """Erasing their details, once they have said they understand it cannot be undone."""

    understand = BooleanField(
        "I understand that my details will be erased from every group and this cannot be undone",
        validators=[InputRequired("Tick the box to confirm you understand what will happen")],
    )
