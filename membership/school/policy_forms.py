"""The form for publishing a new version of a document.

The rules (text changed, change note, review date in the future) live in membership.policies;
this form only parses what was typed and carries the CSRF token.
"""

from __future__ import annotations

from datetime import date

from flask_wtf import FlaskForm
from wtforms import IntegerField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional
from wtforms.widgets import HiddenInput

from ..forms_common import cleaned
from ..validation import Invalid

CHANGE_KINDS = [
    SelectChoice("material", "Material: members (or moderators) must read it and agree again"),
    SelectChoice("minor", "Minor: wording, spelling or layout; nobody is asked again"),
]


def review_date(raw: str | None) -> date | None:
    """A review date as a date picker sends it (YYYY-MM-DD), or None when left empty."""
    value = (raw or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise Invalid("Enter the review date as a real date, for example 2027-07-31") from exc


class PublishPolicyForm(FlaskForm):
    """A new version: Markdown text, material or minor, a change note and an optional review date."""

    # The version the text was copied from, so a version published meanwhile is not overwritten unseen.
    based_on = IntegerField(widget=HiddenInput(), validators=[Optional()])
    text = TextAreaField("Text of the new version")
    # The domain says when nothing was chosen, together with its other messages.
    material = RadioField("What kind of change is this?", choices=CHANGE_KINDS, validate_choice=False)
    change_note = TextAreaField("Change note")
    review_due = StringField("Review date (optional)", validators=[cleaned(review_date)])

    @property
    def is_material(self) -> bool | None:
        """True for material, False for minor, None when neither was chosen."""
        return {"material": True, "minor": False}.get(self.material.data)
