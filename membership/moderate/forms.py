"""Forms shared across the moderators' console."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField
from wtforms.validators import InputRequired
from wtforms.widgets import HiddenInput


class AcceptNoticeForm(FlaskForm):
    """The moderator notice's one statement."""

    version = IntegerField(widget=HiddenInput())
    accept = BooleanField(validators=[InputRequired("Tick the box to accept the moderator notice")])
