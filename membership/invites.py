"""One-time invites into the group chat: issue, inspect, redeem exactly once, revoke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, select

from . import ledger, mail, tokens
from .db import write_rows
from .models import (
    Group,
    GroupView,
    Invite,
    InviteView,
    Membership,
    MembershipView,
    Person,
    PersonView,
    School,
    SchoolView,
    Status,
    read_views,
    utcnow,
)
from .states import move
from .urls import external_url


class InviteUnusable(Exception):
    """The invite cannot open the group; reason is one of invalid, used, expired, revoked.

    `loaded` is the invite with its group and school when the link is genuine (used, expired,
    revoked), so the page can say which group it was for; None when the link is not one of ours.
    """

    def __init__(self, reason: str, loaded: LoadedInvite | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.loaded = loaded


class ChatNotReady(Exception):
    """The group's moderators have not set a chat link yet; the invite is kept."""


@dataclass
class LoadedInvite:
    """An invite with the rows a page about it needs: models when read to redeem it, else rows to show."""

    invite: Invite | InviteView
    membership: Membership | MembershipView
    group: Group | GroupView
    school: School | SchoolView
    person: Person | PersonView


def issue(session: Session, membership: Membership, *, actor: str, channel: str, opening: str | None = None) -> str:
    """Issue a new invite (revoking any open one), email it, and return its token.

    `opening` is a first line for the email saying why it comes now (approved, re-sent…).
    """
    now = utcnow()
    nonce, nonce_hash = tokens.new_nonce()
    expires_at = now + tokens.lifetime("invite")
    params = {"of_membership": membership.id, "now": now, "new_nonce_hash": nonce_hash, "new_expires_at": expires_at}
    # A plain INSERT … RETURNING: the request needs the new invite's id for its token, not the object.
    if session.get_bind().dialect.name == "postgresql":
        invite_id = write_rows(session, _REVOKE_OPEN_AND_INSERT, params).scalar_one()  # one round trip
    else:
        _revoke_open(session, membership.id, now)
        invite_id = write_rows(session, _INSERT_INVITE, params).scalar_one()
    token = tokens.issue("invite", {"i": invite_id, "n": nonce})
    move(membership, Status.INVITED)
    session.add(membership)
    group = session.get(Group, membership.group_id)
    person = session.get(Person, membership.person_id)
    ledger.append(
        session, group.school_id, "invite_issue", actor=actor, channel=channel, person_ref=person.ref,
        group_id=group.id, child_id=membership.child_id, membership_id=membership.id,
        detail={"invite_id": invite_id, "expires_at": expires_at.isoformat()},
    )
    mail.queue(
        session, person.email, "invite", kind="invite", person_id=person.id, group=group, person=person,
        link=external_url("invite.show_invite", token=token), opening=opening,
        hours=int(tokens.lifetime("invite") / timedelta(hours=1)),
    )
    return token


_INSERT_INVITE = (
    insert(Invite.__table__)
    .values(membership_id=bindparam("of_membership"), nonce_hash=bindparam("new_nonce_hash"),
            issued_at=bindparam("now"), expires_at=bindparam("new_expires_at"))
    .returning(Invite.__table__.c.id)
)


def _revoke_open(session: Session, membership_id: int, now) -> int:
    return write_rows(session, _REVOKE_OPEN, {"of_membership": membership_id, "now": now}).rowcount


# Built once (every invite issued runs it). Plain rows, not the session's objects: nothing that
# revokes an invite reads it back in the same request.
_INVITES = Invite.__table__.c
_REVOKE_OPEN = (
    update(Invite.__table__)
    .where(_INVITES.membership_id == bindparam("of_membership"), _INVITES.used_at.is_(None),
           _INVITES.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)
# PostgreSQL: both in one statement. The WITH's UPDATE sees the table as it was before the
# statement, so the new invite is never among those it revokes.
_REVOKE_OPEN_AND_INSERT = _INSERT_INVITE.add_cte(_REVOKE_OPEN.cte("revoked"))


def _state(invite: Invite, membership: Membership) -> str:
    if invite.used_at is not None:
        return "used"
    if invite.revoked_at is not None or membership.status != Status.INVITED:
        return "revoked"
    if invite.expires_at <= utcnow():
        return "expired"
    return "valid"


def load(session: Session, token: str, *, lock: bool = False) -> LoadedInvite:
    """Find the invite a token names; raise InviteUnusable unless it can still be redeemed.

    With lock, the invite and its membership are read under row locks (see _read).
    """
    try:
        payload = tokens.load("invite", token)
    except tokens.TokenExpired as exc:
        raise InviteUnusable("expired") from exc
    except tokens.TokenInvalid as exc:
        raise InviteUnusable("invalid") from exc
    loaded = _read(session, payload["i"], lock=lock) if isinstance(payload.get("i"), int) else None
    if loaded is None or not tokens.nonce_matches(payload.get("n"), loaded.invite.nonce_hash):
        raise InviteUnusable("invalid")
    state = _state(loaded.invite, loaded.membership)
    if state != "valid":
        raise InviteUnusable(state, loaded)
    return loaded


def _read(session: Session, invite_id: int, *, lock: bool = False) -> LoadedInvite | None:
    """An invite and its membership (with its group, school and person) as one statement saw them, fresh.

    One statement, not several gets: under PostgreSQL's READ COMMITTED each statement has its
    own snapshot, so a redemption committed between two reads would pair an unused invite with
    a link_used membership and _state would call a link just used by another click "revoked".

    With lock (redeeming), the membership's row and then the invite's are locked (FOR NO KEY
    UPDATE; SQLite's writer lock is held already), in the order a moderator's removal takes them.
    A click that had to wait reads both as the click before it left them: the invite used, the
    membership link_used. The membership is then the request's to move on, as it stands.
    """
    if lock:
        row = session.exec(_INVITE_WITH_LOCKED_ROWS, params={"invite_id": invite_id}).first()
    else:
        # Only shown: read as rows (models.views), which costs a fraction of loading the models.
        row = read_views(session.connection().execute(_INVITE_WITH_ROWS, {"invite_id": invite_id}).first(),
                         InviteView, MembershipView, GroupView, SchoolView, PersonView)
    return LoadedInvite(*row) if row is not None else None


# Built once (both invite pages run it); only the invite's id is bound on each call.
_INVITE_WITH_ROWS = (
    select(Invite, Membership, Group, School, Person)
    .join(Membership, Membership.id == Invite.membership_id)
    .join(Group, Group.id == Membership.group_id)
    .join(School, School.id == Group.school_id)
    .join(Person, Person.id == Membership.person_id)
    .where(Invite.id == bindparam("invite_id"))
    .execution_options(populate_existing=True)
)
_INVITE_WITH_LOCKED_ROWS = _INVITE_WITH_ROWS.with_for_update(key_share=True, of=[Membership, Invite])


def redeem(session: Session, token: str) -> str:
    """Use an invite exactly once and return the group's current chat link.

    Simultaneous clicks queue on the invite's row lock, and the conditional UPDATE decides the
    winner whatever reads came before it: one click changes the row, the rest see it used.
    """
    loaded = load(session, token, lock=True)
    if not loaded.group.chat_url:
        raise ChatNotReady()
    now = utcnow()
    result = write_rows(session, _USE_INVITE, {"invite": loaded.invite.id, "now": now})
    if result.rowcount != 1:
        session.rollback()
        # Another request changed the row after load(); say what it did (used, or revoked by a
        # moderator meanwhile) rather than guessing, reading the committed row afresh.
        again = _read(session, loaded.invite.id)
        state = _state(again.invite, again.membership) if again is not None else "invalid"
        raise InviteUnusable(state if state != "valid" else "used", again)
    membership = loaded.membership
    move(membership, Status.LINK_USED)
    session.add(membership)
    person = loaded.person
    ledger.append(
        session, loaded.group.school_id, "invite_redeem", actor=f"person:{person.ref}", channel="web",
        person_ref=person.ref, group_id=loaded.group.id, child_id=membership.child_id,
        membership_id=membership.id, detail={"invite_id": loaded.invite.id},
    )
    return loaded.group.chat_url


# Built once: the one statement that decides which of any number of clicks on a link wins.
_USE_INVITE = (
    update(Invite.__table__)
    .where(_INVITES.id == bindparam("invite"), _INVITES.used_at.is_(None), _INVITES.revoked_at.is_(None),
           _INVITES.expires_at > bindparam("now"))
    .values(used_at=bindparam("now"))
)


def revoke(session: Session, membership: Membership, *, actor: str, channel: str) -> int:
    """Revoke every open invite of a membership; return how many were open."""
    count = _revoke_open(session, membership.id, utcnow())
    if count:
        group = session.get(Group, membership.group_id)
        person = session.get(Person, membership.person_id)
        ledger.append(
            session, group.school_id, "invite_revoke", actor=actor, channel=channel, person_ref=person.ref,
            group_id=group.id, child_id=membership.child_id, membership_id=membership.id,
            detail={"revoked": count},
        )
    return count
