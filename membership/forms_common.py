"""Helpers shared by every blueprint's forms."""

from __future__ import annotations

from collections.abc import Callable

from wtforms import Field
from wtforms.validators import ValidationError

from .validation import Invalid


def cleaned(check: Callable[[str], object]) -> Callable:
    """A WTForms validator that runs a validation function and keeps its normal form."""

    def validator(form, field: Field) -> None:
        try:
            field.cleaned = check(field.data)
        except Invalid as exc:
            raise ValidationError(str(exc)) from exc

    return validator
