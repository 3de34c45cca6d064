"""The school staff console: /school/…"""

from flask import Blueprint

bp = Blueprint("school", __name__, url_prefix="/school")

from . import access, concerns, groups, incidents, policies, records, roster, routes  # noqa: E402,F401
