"""The public form for raising a concern."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField, TelField, TextAreaField

from ..concerns import ConcernDetails


class ConcernForm(FlaskForm):
    """Which group, what happened, and an optional way to reply; the rules are in membership.concerns."""

    # The domain checks the choice, so a forged group id gets its message rather than WTForms' own.
    group = SelectField("Which group is it about?", validate_choice=False)
    what_happened = TextAreaField("What happened?")
    contact_name = StringField("Your name (optional)")
    contact_email = EmailField("Email address (optional)")
    contact_phone = TelField("Mobile number (optional)")

    def details(self) -> ConcernDetails:
        """What was typed, for the domain to check."""
        return ConcernDetails(
            self.group.data or "", self.what_happened.data or "", self.contact_name.data or "",
            self.contact_email.data or "", self.contact_phone.data or "",
        )
