"""Forms for the members pages: seen in the chat, removal, invites and the chat link.

The rules (which reasons, when a note is needed, what a chat link may be) live in
membership.moderation.members; these forms only carry the fields and the CSRF token.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import RadioField, StringField, TextAreaField, URLField
from wtforms.fields.choices import SelectChoice

from ..moderation.members import REMOVAL_REASONS


class ActionForm(FlaskForm):
    """A button and its CSRF token: send a new link, cancel a link."""


class SeenForm(FlaskForm):
    """The 'seen in the chat' tick; its button sends seen=no to take the tick back."""

    seen = StringField()


class RemoveForm(FlaskForm):
    """Why a member is removed: a rule of the code of conduct, and a note for the school."""

    # The domain checks the choice, so a forged value gets its message rather than WTForms' own.
    reason = RadioField(
        "Which part of the code of conduct was broken?", validate_choice=False,
        choices=[SelectChoice(code, label) for code, label in REMOVAL_REASONS.items()],
    )
    note = TextAreaField("Note (optional, but needed for ‘Other’)")


class ChatLinkForm(FlaskForm):
    """The group's new chat link."""

    url = URLField("New chat link")
