"""Pending requests: approve, reject, vouch."""

from . import access  # noqa: F401  (loaded first: sign-in and notice gate)

# isort: split

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from .. import moderation
from ..db import get_session
from ..models import Child, Group, Membership, Person, Status
from ..moderation import Row
from ..moderation import requests as decisions
from ..validation import Invalid
from . import bp
from .access import load_group, load_membership
from .request_forms import DecideForm, RejectForm


def _back(group: Group):
    """Post/redirect/get back to the group's page, where the flash message is shown."""
    return redirect(url_for(".group_page", slug=group.slug), 303)


def _row(membership: Membership) -> Row:
    """The membership with the person and child the page names."""
    db = get_session()
    child = db.get(Child, membership.child_id) if membership.child_id else None
    return Row(membership, db.get(Person, membership.person_id), child)


def _refusal(exc: decisions.RequestRefused, name: str) -> str:
    """What the moderator is told when a decision is refused."""
    if isinstance(exc, decisions.MustVouch):
        return (f"{name} gave no code, so nothing shows they have a child in the class. Approve them only if you "
                "know the family, using “Vouch and approve”; if you are not sure, ask the school office.")
    if isinstance(exc, decisions.CannotVouch):
        return f"{name} gave proof of their child already, so there is nothing to vouch for: use “Approve”."
    if isinstance(exc, decisions.NotPending):
        if exc.status in (Status.APPROVED, Status.INVITED, Status.LINK_USED):
            return f"{name}’s request has already been approved, and their link has been emailed."
        if exc.status == Status.REJECTED:
            return f"{name}’s request has already been declined."
        if exc.status in (Status.LEFT, Status.EXPIRED, Status.REMOVED):
            return f"{name}’s request has ended: they withdrew it or it expired."
        return f"{name} has not finished asking to join yet, so there is nothing to decide."
    return "That request cannot be changed."


def _decide(slug: str, membership_id: int, decide, done: str):
    """Load and authorise, check the token, run one decision, then say what happened on the group page."""
    group = load_group(slug)
    membership = load_membership(group, membership_id)
    if not DecideForm().validate_on_submit():
        abort(400)  # CSRF is checked centrally first; this is only reached by a malformed request
    db = get_session()
    name = db.get(Person, membership.person_id).name
    try:
        decide(db, membership, current_user)
    except decisions.RequestRefused as exc:
        db.rollback()
        flash(_refusal(exc, name), "error")
        return _back(group)
    except moderation.NotFound:  # stood down between loading the page and deciding
        db.rollback()
        abort(404)
    db.commit()
    flash(done.format(name=name))
    return _back(group)


@bp.route("/<slug>/requests/<int:membership_id>/approve", methods=["POST"])
def approve_request(slug: str, membership_id: int):
    """Approve a request that came with a code or personal invitation; the parent is emailed their link."""
    return _decide(slug, membership_id, decisions.approve, "{name} is approved. We have emailed them their link.")


@bp.route("/<slug>/requests/<int:membership_id>/vouch", methods=["POST"])
def vouch_request(slug: str, membership_id: int):
    """Vouch for a parent who gave no code and approve them; the vouch is recorded in your name."""
    return _decide(
        slug, membership_id, decisions.vouch,
        "You vouched for {name} and approved them. We have emailed them their link.",
    )


@bp.route("/<slug>/requests/<int:membership_id>/reject", methods=["GET", "POST"])
def reject_request(slug: str, membership_id: int):
    """Decline a request with a reason; the parent is told politely, with the reason only if you choose."""
    group = load_group(slug)
    membership = load_membership(group, membership_id)
    row = _row(membership)
    db = get_session()
    if membership.status != Status.PENDING_APPROVAL:
        flash(_refusal(decisions.NotPending(membership.status), row.person.name), "error")
        return _back(group)
    form = RejectForm()
    if form.validate_on_submit():
        try:
            decisions.reject(db, membership, current_user, form.reason.cleaned, tell_parent=form.tell_parent.data)
        except decisions.RequestRefused as exc:
            db.rollback()
            flash(_refusal(exc, row.person.name), "error")
            return _back(group)
        except moderation.NotFound:  # stood down between loading the page and deciding
            db.rollback()
            abort(404)
        except Invalid as exc:  # the form checked the reason already; kept so a refusal is never a 500
            db.rollback()
            form.reason.errors.append(str(exc))
        else:
            db.commit()
            told = " with your reason" if form.tell_parent.data else ""
            flash(f"You declined {row.person.name}’s request. We have emailed them{told}.")
            return _back(group)
    return render_template("moderate/reject.html", group=group, row=row, form=form), 400 if form.errors else 200
