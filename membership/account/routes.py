"""Choosing a password from the emailed single-use link."""

from __future__ import annotations

from flask import render_template

from .. import schools, tokens
from ..db import get_session
from ..extensions import limiter
from . import bp
from .forms import SetPasswordForm


@bp.route("/set-password/<token>", methods=["GET", "POST"])
@limiter.limit("20 per hour", methods=["POST"])
def set_password(token: str):
    """Set a password; the link stops working as soon as the password changes."""
    db = get_session()
    try:
        user = schools.user_for_set_password(db, token)
    except tokens.TokenExpired:
        return render_template("account/link_problem.html", reason="expired"), 410
    except tokens.TokenInvalid:
        return render_template("account/link_problem.html", reason="invalid"), 404
    form = SetPasswordForm()
    if form.validate_on_submit():
        schools.set_password(user, form.password.data)
        db.add(user)
        db.commit()
        return render_template("account/password_set.html", user=user)
    return render_template("account/set_password.html", form=form, user=user), 400 if form.errors else 200
