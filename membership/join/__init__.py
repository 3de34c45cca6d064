"""The parent journey: join page, proof of the child, details, email check, agreement."""

from flask import Blueprint

bp = Blueprint("join", __name__, url_prefix="/join")

from . import routes  # noqa: E402,F401
