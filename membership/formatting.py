"""How dates and phone numbers are shown to people in the UK."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import phonenumbers
from flask import Flask

# tzdata is a requirement, so the UK zone exists even where the system has no zone files.
UK = ZoneInfo("Europe/London")


def uk_time(moment: datetime | None) -> str:
    """A UTC timestamp as a UK reader expects it: 14 January 2026 at 3:05pm."""
    if moment is None:
        return ""
    local = moment.astimezone(UK) if moment.tzinfo else moment.replace(tzinfo=timezone.utc).astimezone(UK)
    hour = local.hour % 12 or 12
    return f"{local.day} {local:%B %Y} at {hour}:{local:%M}{'am' if local.hour < 12 else 'pm'}"


def readable_mobile(e164: str | None) -> str:
    """A stored E.164 mobile spaced for matching a chat join request by eye: +44 7911 123456."""
    if not e164:
        return "no mobile given"
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return e164


def init_app(app: Flask) -> None:
    """Make the formatters available to every template as filters."""
    app.add_template_filter(uk_time, "uk_time")
    app.add_template_filter(readable_mobile, "readable_mobile")
