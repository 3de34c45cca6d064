"""Checks and normal forms for what people type: names, emails, mobiles, children's names."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

NAME_MAX = 80
CHILD_NAME_MAX = 40
_SPACES = re.compile(r"\s+")
_CHILD_WORD = re.compile(r"^[^\W\d_]+(?:['’\-][^\W\d_]+)*$")
_INITIAL = re.compile(r"^(?:[^\W\d_]\.?|[^\W\d_]{2,3}\.)$")
# Characters that reorder the text around them, so what is read is not what was typed.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Every id column is a PostgreSQL integer: a larger number in an address names nothing, and SQLite
# cannot even be asked about one beyond 64 bits.
ID_MAX = 2**31 - 1


class Invalid(ValueError):
    """Input that cannot be accepted; the message is shown to the person who typed it."""


def has_control(text: str, *, line_breaks: bool = False) -> bool:
    """True for control characters (NUL among them) and text-direction overrides.

    Line breaks and tabs are allowed only where line_breaks says so (text areas). Other invisible
    characters stay allowed: the joiner inside an emoji sequence is one of them. PostgreSQL
    refuses NUL in any text column, so free text goes through this before it is written.
    """
    allowed = "\n\t" if line_breaks else ""
    return any(
        (unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed) or ch in BIDI_CONTROLS for ch in text
    )


def fits_id(value: object) -> bool:
    """True for a whole number that could be a row's id; loaders answer 'not found' for anything else."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= ID_MAX


def _clean(raw: str | None) -> str:
    return _SPACES.sub(" ", (raw or "").strip())


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in text)


def person_name(raw: str | None) -> str:
    """A parent's name: 1–80 characters, printable, with at least one letter."""
    if raw and _has_control(raw.strip()):
        raise Invalid("Your name must only include letters, spaces, hyphens and apostrophes")
    name = _clean(raw)
    if not name:
        raise Invalid("Enter your name")
    if len(name) > NAME_MAX:
        raise Invalid(f"Your name must be {NAME_MAX} characters or fewer")
    if not any(ch.isalpha() for ch in name):
        raise Invalid("Your name must include letters")
    return name


def child_name(raw: str | None) -> str:
    """A child's display name: a first name and at most a surname initial, e.g. 'Amelia R.'."""
    if raw and _has_control(raw.strip()):
        raise Invalid("The child's name must only include letters, spaces, hyphens and apostrophes")
    name = _clean(raw)
    if not name:
        raise Invalid("Enter the child's first name")
    if len(name) > CHILD_NAME_MAX:
        raise Invalid(f"The child's name must be {CHILD_NAME_MAX} characters or fewer")
    words = name.split(" ")
    *given, last = words
    if not all(_CHILD_WORD.match(word) for word in given) or not (
        _CHILD_WORD.match(last) or (given and _INITIAL.match(last))
    ):
        raise Invalid("The child's name must only include letters, spaces, hyphens and apostrophes")
    if len(words) > 1 and not _INITIAL.match(last):
        raise Invalid("Use the child's first name and only the first letter of their surname, like Amelia R.")
    if _INITIAL.match(last) and len(words) > 1 and not last.endswith("."):
        name = f"{name}."
    if len(name) > CHILD_NAME_MAX:
        # The full stop added after an initial must fit too: the stored name is what counts.
        raise Invalid(f"The child's name must be {CHILD_NAME_MAX} characters or fewer")
    return name


def email(raw: str | None) -> str:
    """A deliverable-looking email address in normal form (domain lower-cased)."""
    text = (raw or "").strip()
    if not text:
        raise Invalid("Enter your email address")
    if len(text) > 254 or _has_control(text):
        raise Invalid("Enter an email address in the correct format, like name@example.com")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid("Enter an email address in the correct format, like name@example.com") from exc
    return result.normalized.lower()


def mobile(raw: str | None, region: str = "GB") -> str | None:
    """An optional mobile number, validated and returned in E.164 form (+447700900123)."""
    text = _clean(raw)
    if not text:
        return None
    message = "Enter a mobile number, like 07911 123456 or +44 7911 123456"
    if len(text) > 30 or _has_control(text):
        raise Invalid(message)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise Invalid(message) from exc
    if not phonenumbers.is_valid_number(number):
        raise Invalid(message)
    kind = phonenumbers.number_type(number)
    if kind not in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise Invalid("Enter a mobile number, not a landline")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_mobile(e164: str | None) -> str:
    """Show enough of a mobile to match a chat join request: +44…982."""
    if not e164:
        return "no mobile given"
    return f"{e164[:3]}…{e164[-3:]}"
