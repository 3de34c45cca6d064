"""The home page and /healthz."""

from __future__ import annotations

from flask import jsonify, render_template
from sqlalchemy import text

from ..db import get_session
from . import bp


@bp.route("/")
def home():
    """What Classgate is, for someone who arrives without a link."""
    return render_template("web/home.html")


@bp.route("/healthz")
def healthz():
    """200 when the database answers, 503 otherwise (for load balancers)."""
    try:
        get_session().exec(text("SELECT 1")).one()
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="ok")
