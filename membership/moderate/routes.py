"""The dashboard, the moderator notice and a group's overview page."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user

from .. import moderation, policies
from ..db import get_session
from . import bp
from .access import load_group
from .forms import AcceptNoticeForm


@bp.route("/")
def dashboard():
    """The groups this moderator looks after, with what is waiting in each."""
    db = get_session()
    groups = moderation.groups_for(db, current_user)
    return render_template(
        "moderate/dashboard.html", groups=groups, counts=moderation.counts(db, [g.id for g in groups])
    )


@bp.route("/notice", methods=["GET", "POST"])
def notice():
    """The moderator notice: accepted before anything else, and again after a material change."""
    db = get_session()
    version = moderation.current_notice(db, current_user.school_id)
    form = AcceptNoticeForm()
    if form.validate_on_submit():
        try:
            moderation.accept_notice(db, current_user, form.version.data)
        except policies.NoPolicy:
            db.rollback()
            flash("The notice was updated while you were reading. Please read the new version.", "error")
            return redirect(url_for(".notice"), 303)
        db.commit()
        flash("Thank you. You have accepted the moderator notice.")
        return redirect(url_for(".dashboard"), 303)
    form.version.data = version.id
    return render_template(
        "moderate/notice.html", form=form, version=version, html=policies.render(version.text),
        statement=policies.agreement_statement(version),
        again=current_user.notice_version_id is not None,
    ), 400 if form.errors else 200


@bp.route("/<slug>/")
def group_page(slug: str):
    """A group's overview: pending requests first, then links to members and the chat link."""
    group = load_group(slug)
    db = get_session()
    return render_template(
        "moderate/group.html", group=group, pending=moderation.pending(db, group),
        counts=moderation.counts(db, [group.id])[group.id],
    )
