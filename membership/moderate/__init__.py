"""The moderators' console: /moderate/ and /moderate/<group>/…"""

from flask import Blueprint

bp = Blueprint("moderate", __name__, url_prefix="/moderate")

from . import members, requests, routes  # noqa: E402,F401
