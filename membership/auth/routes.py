"""/login and /logout."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import login_user, logout_user

from .. import accounts
from ..db import get_session
from ..extensions import limiter, login_manager
from ..models import Role
from . import bp
from .forms import SignInForm, SignOutForm

SIGN_IN_FAILED = "The email address or password is not right"


@login_manager.user_loader
def _load_user(session_id: str):
    return accounts.load_user(get_session(), session_id)


def _failed(response) -> bool:
    return response.status_code == 400


def _email_key() -> str:
    return "signin:" + (request.form.get("email") or "").strip().lower()


def landing_page(user) -> str:
    """Where an account goes after signing in."""
    if user.role == Role.MODERATOR:
        return url_for("moderate.dashboard")
    return url_for("school.dashboard")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SIGNIN_LIMIT_PER_CLIENT"], methods=["POST"], deduct_when=_failed)
@limiter.limit(lambda: current_app.config["SIGNIN_LIMIT_PER_ACCOUNT"], key_func=_email_key, methods=["POST"],
               deduct_when=_failed)
def login():
    """Sign in with email and password; one message for every kind of failure."""
    form = SignInForm()
    target = accounts.safe_next(request.args.get("next"))
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(get_session(), form.email.data, form.password.data)
        except accounts.SignInFailed:
            form.email.errors.append(SIGN_IN_FAILED)
        else:
            session.clear()  # nothing from before sign-in (a parent's journey, say) carries over
            login_user(user)
            session.permanent = True
            return redirect(target or landing_page(user), 303)
    return render_template("auth/login.html", form=form), 400 if form.errors else 200


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out and forget the session."""
    form = SignOutForm()
    if form.validate_on_submit():
        logout_user()
        session.clear()
        flash("You have signed out.")
    return redirect(url_for("auth.login"), 303)
