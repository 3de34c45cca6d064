"""Thin views for /me/: the rules live in membership.parents, journey and privacy.

The parent's session is separate from staff sign-in: the browser's session holds only the id
of a used sign-in link (`session["me"]`), and every request checks that row is still in date,
not signed out and not erased.
"""

from __future__ import annotations

import hashlib
import json
from functools import wraps

from flask import Response, abort, current_app, flash, g, redirect, render_template, request, session, url_for

from .. import journey, parents, policies, privacy, validation
from ..db import get_session
from ..extensions import limiter
from ..join.forms import AgreeForm
from ..models import utcnow
from . import bp
from .forms import ConfirmForm, EmailForm, EraseForm

SESSION_KEY = "me"
SENT_TO_KEY = "me_sent_to"
LINK_STATUS = {"invalid": 404, "used": 410, "expired": 410}


def _client_limit() -> str:
    """How many sign-in emails one client may ask for (shared with the join journey's emails)."""
    return current_app.config["MAIL_LIMIT_PER_CLIENT"]


def _email_limit() -> str:
    """How many sign-in emails one address may be sent, whoever asks."""
    return current_app.config["PARENT_LINK_LIMIT_PER_EMAIL"]


def _email_key() -> str:
    """The limit's key for the address typed: normalised when it can be, hashed so no address is kept."""
    raw = (request.form.get("email") or "")[:300]
    try:
        typed = validation.email(raw)
    except validation.Invalid:
        typed = raw.strip().lower()
    return "parent-link:" + hashlib.sha256(typed.encode("utf-8", "replace")).hexdigest()[:32]


def _parent():
    """The signed-in parent's sign-in row, or None (and the browser forgets an ended session)."""
    if "parent" not in g:
        data = session.get(SESSION_KEY)
        row = parents.signed_in(get_session(), data.get("id") if isinstance(data, dict) else None)
        if row is None and data is not None:
            session.pop(SESSION_KEY, None)
            g.parent_session_ended = True
        g.parent = row
    return g.parent


def parent_required(view):
    """Let a view run only for a signed-in parent; anyone else goes to /me/ to get a link."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if _parent() is None:
            if g.get("parent_session_ended"):
                flash("You have been signed out. Enter your email address to get a new link.")
            return redirect(url_for(".index"), 303)
        return view(*args, **kwargs)

    return wrapped


def _owned(membership_id: int) -> parents.Owned:
    """One of the signed-in parent's memberships; 404 for anyone else's."""
    owned = parents.owned_membership(get_session(), _parent().email, membership_id)
    if owned is None:
        abort(404)
    return owned


@bp.route("/", methods=["GET", "POST"])
@limiter.limit(_client_limit, methods=["POST"])
@limiter.limit(_email_limit, key_func=_email_key, methods=["POST"])
def index():
    """Signed in: the parent's groups. Otherwise: the form that emails a sign-in link."""
    form = EmailForm()
    if request.method == "GET" and _parent() is not None:
        return _my_groups()
    if form.validate_on_submit():
        db = get_session()
        parents.send_link(db, form.email.cleaned)
        db.commit()
        session[SENT_TO_KEY] = form.email.cleaned
        return redirect(url_for(".check_email"), 303)
    if g.get("parent_session_ended"):
        flash("You have been signed out. Enter your email address to get a new link.")
    return render_template("me/sign_in.html", form=form), 400 if form.errors else 200


def _my_groups():
    """The signed-in parent's groups page."""
    row = _parent()
    groups = parents.my_groups(get_session(), row.email)
    return render_template(
        "me/groups.html", email=row.email, groups=groups, signed_in=row, sign_out_form=ConfirmForm(),
        until=parents.session_ends(row),
    )


@bp.route("/check-email")
def check_email():
    """The same page whether or not the address is known, so it never tells who has joined."""
    form = EmailForm(formdata=None, email=session.get(SENT_TO_KEY))
    return render_template("me/check_email.html", form=form, email=session.get(SENT_TO_KEY),
                           minutes=parents.link_minutes())


def _link_problem(reason: str):
    """The page for a link that cannot sign anyone in, with the form to get a new one."""
    return (
        render_template("me/link_problem.html", reason=reason, form=EmailForm(), minutes=parents.link_minutes()),
        LINK_STATUS[reason],
    )


@bp.route("/sign-in/<token>", methods=["GET"])
def sign_in(token: str):
    """The emailed link: shows a 'Sign in' button and uses nothing (mail scanners open links)."""
    try:
        parents.check_link(get_session(), token)
    except parents.LinkUnusable as exc:
        return _link_problem(exc.reason)
    return render_template("me/confirm_sign_in.html", form=ConfirmForm(), token=token)


@bp.route("/sign-in/<token>", methods=["POST"])
def use_sign_in_link(token: str):
    """Use the link exactly once and sign this browser in."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        return sign_in(token)
    db = get_session()
    try:
        row = parents.use_link(db, token)
    except parents.LinkUnusable as exc:
        db.rollback()
        return _link_problem(exc.reason)
    db.commit()
    session.pop(SENT_TO_KEY, None)
    session[SESSION_KEY] = {"id": row.id}
    return redirect(url_for(".index"), 303)


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    """Sign out for good: the sign-in row is marked, so a copied cookie is no use either."""
    form = ConfirmForm()
    if form.validate_on_submit():
        row = _parent()
        if row is not None:
            db = get_session()
            parents.sign_out(db, row)
            db.commit()
        session.pop(SESSION_KEY, None)
        flash("You have signed out.")
    return redirect(url_for(".index"), 303)


@bp.route("/groups/<int:membership_id>/reagree", methods=["GET", "POST"])
@parent_required
def reagree(membership_id: int):
    """Both current texts in full and the two statements; the POST records the agreement."""
    owned = _owned(membership_id)
    membership, group, school = owned.membership, owned.group, owned.school
    if membership.status not in policies.ACTIVE:
        flash(f"Your membership of {group.name} has ended, so there is nothing to agree to.")
        return redirect(url_for(".index"), 303)
    if not membership.needs_reagree:
        flash(f"You have already agreed to the current documents for {group.name}. There is nothing more to do.")
        return redirect(url_for(".index"), 303)
    db = get_session()
    coc, notice = journey.current_documents(db, school.id)
    form = AgreeForm()
    if form.validate_on_submit():
        try:
            journey.reagree(db, membership, form.coc_version.data, form.notice_version.data, channel="me")
        except journey.NoLongerMember:
            db.rollback()
            flash(f"Your membership of {group.name} has ended, so there is nothing to agree to.")
            return redirect(url_for(".index"), 303)
        except journey.PolicyChanged:
            db.rollback()
            flash("The documents were updated while you were reading. Please read the new versions below.", "error")
            return redirect(url_for(".reagree", membership_id=membership_id), 303)
        db.commit()
        flash(f"Thank you. You have agreed to the current documents for {group.name}. You stay in the group.")
        return redirect(url_for(".index"), 303)
    # Offer the versions shown on this page, even when re-showing a refused form (as join does).
    for hidden, version in ((form.coc_version, coc), (form.notice_version, notice)):
        hidden.data, hidden.raw_data = version.id, None
    return render_template(
        "me/reagree.html", group=group, school=school, form=form, coc=coc, notice=notice,
        membership=membership, changes=parents.changed_documents(db, membership),
        coc_html=policies.render(coc.text), notice_html=policies.render(notice.text),
        coc_statement=policies.agreement_statement(coc), notice_statement=policies.agreement_statement(notice),
    ), 400 if form.errors else 200


@bp.route("/groups/<int:membership_id>/leave", methods=["GET", "POST"])
@parent_required
def leave(membership_id: int):
    """Ask 'Leave this group?', then leave it: never a penalty, and they can join again."""
    owned = _owned(membership_id)
    membership, group = owned.membership, owned.group
    form = ConfirmForm()
    if form.validate_on_submit():
        db = get_session()
        try:
            privacy.leave(db, membership, channel="me")
        except privacy.NotLeavable:
            db.rollback()
            flash(f"You are no longer in {group.name}, so there is nothing to leave.")
            return redirect(url_for(".index"), 303)
        db.commit()
        flash(f"You have left {group.name}. We have emailed you to confirm.")
        return redirect(url_for(".index"), 303)
    if membership.status not in privacy.LEAVABLE:
        flash(f"You are no longer in {group.name}, so there is nothing to leave.")
        return redirect(url_for(".index"), 303)
    # The school goes in as group_school: a `school` would put its name in the header, which on
    # these pages (a parent's groups at any school) is not where they are.
    return render_template("me/leave.html", group=group, group_school=owned.school, membership=membership, form=form)


@bp.route("/data.json")
@parent_required
def download_data():
    """Everything held about them, as a JSON file to keep."""
    now = utcnow()
    data = parents.export(get_session(), _parent().email, now)
    body = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return Response(
        body, mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{parents.export_filename(now)}"'},
    )


@bp.route("/erase", methods=["GET", "POST"])
@parent_required
def erase():
    """Explain erasure plainly; once they tick 'I understand', erase every record under their address."""
    row = _parent()
    db = get_session()
    form = EraseForm()
    if form.validate_on_submit():
        privacy.erase_email(db, row.email, channel="me")
        db.commit()
        session.pop(SESSION_KEY, None)
        session.pop("journey", None)
        return render_template("me/erased.html")
    groups = [item for item in parents.my_groups(db, row.email) if not item.ended]
    return render_template("me/erase.html", form=form, email=row.email, groups=groups), 400 if form.errors else 200
