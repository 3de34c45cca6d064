"""Raising a concern with a school, at /concerns/<school-slug>: public, and seen by the school's staff only."""

from flask import Blueprint

bp = Blueprint("concerns", __name__, url_prefix="/concerns")

from . import routes  # noqa: E402,F401
