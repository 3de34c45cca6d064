"""The one-time invite link: a confirm page on GET, redemption on POST."""

from flask import Blueprint

bp = Blueprint("invite", __name__, url_prefix="/invite")

from . import routes  # noqa: E402,F401
