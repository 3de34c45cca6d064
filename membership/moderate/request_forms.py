"""Forms for deciding pending requests."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, TextAreaField

from ..forms_common import cleaned
from ..moderation.requests import check_reason


class DecideForm(FlaskForm):
    """Approve, or vouch and approve: a single button, so the form carries only its CSRF token."""


class RejectForm(FlaskForm):
    """Decline a request: the reason for the school's records, and whether the parent is told it."""

    reason = TextAreaField("Why are you declining this request?", validators=[cleaned(check_reason)])
    tell_parent = BooleanField()
