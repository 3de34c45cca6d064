"""GET never consumes an invite (mail scanners and link previews fetch it); POST redeems it once."""

from __future__ import annotations

from flask import redirect, render_template

from .. import invites
from ..db import get_session
from ..join.forms import ConfirmForm
from . import bp

REASON_STATUS = {"invalid": 404, "used": 410, "expired": 410, "revoked": 410}


def _unusable(unusable: invites.InviteUnusable):
    """Say what happened to the link; a genuine one also names its group and school."""
    loaded = unusable.loaded
    return render_template(
        "invite/unusable.html", reason=unusable.reason, group=loaded.group if loaded else None,
        school=loaded.school if loaded else None,
    ), REASON_STATUS[unusable.reason]


@bp.route("/<token>", methods=["GET"])
def show_invite(token: str):
    """Show who the invite is for and an 'Open the group' button; uses nothing."""
    db = get_session()
    try:
        loaded = invites.load(db, token)
    except invites.InviteUnusable as exc:
        return _unusable(exc)
    return render_template(
        "invite/show_invite.html", loaded=loaded, group=loaded.group, school=loaded.school, form=ConfirmForm()
    )


@bp.route("/<token>", methods=["POST"])
def redeem_invite(token: str):
    """Use the invite exactly once and send the browser to the group's chat link."""
    form = ConfirmForm()
    db = get_session()
    if not form.validate_on_submit():
        return show_invite(token)
    try:
        chat_url = invites.redeem(db, token)
    except invites.InviteUnusable as exc:
        page = _unusable(exc)  # rendered first: a rollback expires the rows it names
        db.rollback()
        return page
    except invites.ChatNotReady:
        db.rollback()
        return render_template("invite/not_ready.html"), 503
    db.commit()
    return redirect(chat_url, 303)
