"""Account forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import EqualTo, InputRequired, Length

from ..passwords import MIN_LENGTH


class SetPasswordForm(FlaskForm):
    """Choose a password from an emailed link."""

    password = PasswordField(
        "New password",
        validators=[
            InputRequired("Enter a password"),
            Length(min=MIN_LENGTH, max=200, message=f"The password must be at least {MIN_LENGTH} characters"),
        ],
    )
    confirm = PasswordField(
        "Type the password again",
        validators=[
            InputRequired("Type the password again"),
            EqualTo("password", message="The passwords do not match"),
        ],
    )
