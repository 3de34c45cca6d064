"""Sign-in, the moderator-notice gate and 404-on-load for every moderator page."""

from __future__ import annotations

from flask import abort, redirect, request, url_for
from flask_login import current_user

from .. import moderation
from ..db import get_session
from ..models import Group, Membership, Role
from . import bp

# Pages a moderator may open before accepting the notice.
NOTICE_FREE = {"moderate.notice"}


@bp.before_request
def _signed_in_and_notice_accepted():
    """Every moderator page needs a signed-in moderator account that has accepted the current notice.

    Staff have their own console: this one is not there for them (and they never accept the
    moderator notice, which would put a moderator's acceptance in the ledger under their name).
    """
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if current_user.role != Role.MODERATOR:
        abort(404)
    if request.endpoint not in NOTICE_FREE and moderation.needs_notice(get_session(), current_user):
        return redirect(url_for("moderate.notice"))
    return None


def load_group(slug: str) -> Group:
    """The group named in the URL if this moderator moderates it; 404 otherwise, never 403."""
    try:
        return moderation.group_for(get_session(), current_user, slug)
    except moderation.NotFound:
        abort(404)


def load_membership(group: Group, membership_id: int) -> Membership:
    """A membership of this group; 404 for any other id."""
    try:
        return moderation.membership_in(get_session(), group, membership_id)
    except moderation.NotFound:
        abort(404)
