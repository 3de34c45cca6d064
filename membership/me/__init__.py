"""Parents' own records at /me/: magic-link sign-in, their groups, leaving, their data, erasure."""

from flask import Blueprint

bp = Blueprint("me", __name__, url_prefix="/me")

from . import routes  # noqa: E402,F401
