"""Members: the match list, seen in the chat, removal, invites and the chat link."""

from . import access  # noqa: F401, I001  (loaded first: sign-in and notice gate)

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from .. import moderation, privacy
from ..db import get_session
from ..models import Group, Membership, Status
from ..moderation import members as operations
from ..validation import Invalid
from . import bp
from .access import load_group, load_membership
from .member_forms import ActionForm, ChatLinkForm, RemoveForm, SeenForm

def _page(template: str, group: Group, status: int = 200, **context):
    """Render a members page with what every one of them shows: the group's tabs and counts."""
    counts = moderation.counts(get_session(), [group.id])[group.id]
    return render_template(template, group=group, counts=counts, **context), status


def _to_list(group: Group):
    """Back to the members page, after a POST."""
    return redirect(url_for(".list_members", slug=group.slug), 303)


def _name(membership: Membership) -> str:
    """The member's name, for a message."""
    return operations.who(get_session(), membership).name


@bp.route("/<slug>/members")
def list_members(slug: str):
    """The match list: who to let into the chat, with their links and agreements."""
    group = load_group(slug)
    roster = operations.roster(get_session(), group)
    return _page(
        "moderate/members.html", group, tab="members", rows=roster.members, ended=roster.ended,
        take_out=privacy.chat_removals(get_session(), group),
        current_coc=roster.current_coc, current_notice=roster.current_notice, reasons=operations.REASON_LABELS,
    )


@bp.route("/<slug>/members/<int:membership_id>/seen", methods=["POST"])
def mark_seen(slug: str, membership_id: int):
    """Tick (or untick) 'seen in the chat' once the member's join request has arrived."""
    group = load_group(slug)
    membership = load_membership(group, membership_id)
    form = SeenForm()
    if not form.validate_on_submit():
        abort(400)
    seen = form.seen.data != "no"
    db = get_session()
    try:
        operations.mark_seen(db, membership, current_user, seen)
    except operations.Refused as refused:
        db.rollback()
        flash(str(refused), "error")
        return _to_list(group)
    db.commit()
    name = _name(membership)
    flash(f"{name} is marked as seen in the chat." if seen else f"{name} is no longer marked as seen in the chat.")
    return _to_list(group)


@bp.route("/<slug>/members/<int:membership_id>/remove", methods=["GET", "POST"])
def remove_member(slug: str, membership_id: int):
    """Remove a member: the rule broken, a note, then the checklist for the chat."""
    group = load_group(slug)
    membership = load_membership(group, membership_id)
    if membership.status == Status.REMOVED:
        return redirect(url_for(".removed_member", slug=slug, membership_id=membership_id), 303)
    db = get_session()
    if membership.status not in moderation.ACTIVE:
        flash(f"{_name(membership)} is not a current member of the group.", "error")
        return _to_list(group)
    form = RemoveForm()
    if form.validate_on_submit():
        try:
            removed = operations.remove(db, membership, current_user, form.reason.data, form.note.data)
        except operations.BadInput as bad:
            db.rollback()
            form[bad.field].errors.append(str(bad))
        except operations.Refused as refused:
            db.rollback()
            flash(str(refused), "error")
            return _to_list(group)
        else:
            db.commit()
            flash(f"{removed.name} has been removed from the group on Classgate.")
            return redirect(url_for(".removed_member", slug=slug, membership_id=membership_id), 303)
    return _page(
        "moderate/remove.html", group, 400 if form.errors else 200, form=form, membership=membership,
        who=operations.who(db, membership),
    )


@bp.route("/<slug>/members/<int:membership_id>/out-of-chat", methods=["POST"])
def taken_out_of_chat(slug: str, membership_id: int):
    """A moderator says someone who left or was removed is no longer in the chat."""
    group = load_group(slug)
    membership = load_membership(group, membership_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    db = get_session()
    name = _name(membership)
    if privacy.mark_removed_from_chat(db, membership, current_user):
        db.commit()
        flash(f"{name} is marked as taken out of the chat.")
    else:
        db.rollback()
        flash(f"Nobody needed to take {name} out of the chat, or it was already done.", "error")
    return _to_list(group)


@bp.route("/<slug>/members/<int:membership_id>/removed")
def removed_member(slug: str, membership_id: int):
    """The checklist after a removal: now remove them in the chat itself."""
    group = load_group(slug)
    membership = load_membership(group, membership_id)
    if membership.status != Status.REMOVED:
        return _to_list(group)
    return _page("moderate/removed.html", group, who=operations.who(get_session(), membership), membership=membership)


def _invite_action(slug: str, membership_id: int, operation, done: str):
    """Run one invite operation from a button, then go back to the list with what happened."""
    group = load_group(slug)
    membership = load_membership(group, membership_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    db = get_session()
    try:
        operation(db, membership, current_user)
    except operations.Refused as refused:
        db.rollback()
        flash(str(refused), "error")
        return _to_list(group)
    db.commit()
    flash(done.format(name=_name(membership)))
    return _to_list(group)


@bp.route("/<slug>/members/<int:membership_id>/reissue", methods=["POST"])
def reissue_invite(slug: str, membership_id: int):
    """Cancel a member's link and email them a new one."""
    return _invite_action(
        slug, membership_id, operations.reissue_invite,
        "A new link has been emailed to {name}. Any earlier link no longer works.",
    )


@bp.route("/<slug>/members/<int:membership_id>/revoke", methods=["POST"])
def revoke_invite(slug: str, membership_id: int):
    """Cancel a member's unused link (send a new one later if needed)."""
    return _invite_action(
        slug, membership_id, operations.revoke_invite,
        "The link sent to {name} has been cancelled. You can send a new one at any time.",
    )


@bp.route("/<slug>/chat-link", methods=["GET", "POST"])
def chat_link(slug: str):
    """See, set or rotate the group's chat link; shown to this group's moderators and nobody else."""
    group = load_group(slug)
    db = get_session()
    form = ChatLinkForm()
    if form.validate_on_submit():
        try:
            changed = operations.set_chat_link(db, group, current_user, form.url.data)
        except Invalid as invalid:
            db.rollback()
            form.url.errors.append(str(invalid))
        else:
            db.commit()
            flash(
                "The chat link has been changed. Links already sent and not yet used now open the new link."
                if changed else "That is already the group’s chat link: nothing has changed."
            )
            return redirect(url_for(".chat_link", slug=slug), 303)
    return _page(
        "moderate/chat_link.html", group, 400 if form.errors else 200, tab="chat", form=form,
        open_invites=operations.open_invites(db, group),
    )
