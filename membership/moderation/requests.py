"""A moderator decides a pending request: approve, decline with a reason, or vouch for a no-code parent.

Plain functions over a Session; the caller commits. Every check comes before the first write,
so a refused decision raises with nothing changed (callers roll back all the same).
"""

from __future__ import annotations

import hashlib
import unicodedata

from sqlalchemy import update
from sqlmodel import Session, select

from .. import invites, journey, ledger, mail
from ..models import EnrolmentCode, Group, Membership, Person, School, Status, User, Verification, utcnow
from ..states import move
from ..validation import Invalid
from . import actor, group_for

REASON_MAX = 500
CHANNEL = "moderator"


class RequestRefused(Exception):
    """A decision the request's current state does not allow; the message is for the moderator's page."""


class NotPending(RequestRefused):
    """The request is no longer waiting (decided already, perhaps by a double tap or another moderator)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = Status(status)


class MustVouch(RequestRefused):
    """A request without a code carries no proof: a moderator approves it only by vouching."""


class CannotVouch(RequestRefused):
    """Only a request with no code can be vouched for; the others already carry their proof."""


def check_reason(raw: str | None) -> str:
    """A reason for declining: 1–500 printable characters, whitespace collapsed."""
    if raw and any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in raw.strip()):
        raise Invalid("The reason must only include letters, numbers and punctuation")
    reason = " ".join((raw or "").split())
    if not reason:
        raise Invalid("Enter a reason for declining the request")
    if len(reason) > REASON_MAX:
        raise Invalid(f"The reason must be {REASON_MAX} characters or fewer")
    return reason


def _lock_pending(session: Session, moderator: User, membership: Membership) -> tuple[Group, Membership]:
    """The group and the membership, re-read under a row lock, if it is still waiting for this moderator.

    Two taps on Approve, or two moderators at once, queue here (PostgreSQL row lock; SQLite's
    writer lock): the second reads the first's committed decision and is refused, rather than
    issuing a second invite.
    """
    group = session.get(Group, membership.group_id)
    # Authorise here too, not only where the view loaded it: a decision is only ever this group's moderators'.
    group_for(session, moderator, group.slug)
    fresh = session.exec(
        select(Membership)
        .where(Membership.id == membership.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()
    if fresh.status != Status.PENDING_APPROVAL:
        raise NotPending(fresh.status)
    return group, fresh


def _approve_and_invite(session: Session, membership: Membership, moderator: User) -> str:
    """Approve, then issue and email the one-time invite; return its token."""
    journey.approve(session, membership, by=moderator)
    return invites.issue(
        session, membership, actor=actor(moderator), channel=CHANNEL,
        opening="Good news: the group's moderator has approved your request to join.",
    )


def approve(session: Session, membership: Membership, moderator: User) -> str:
    """Approve a waiting request that came with a code or a personal invitation; the invite is emailed.

    Returns the invite's token. A request with no code raises MustVouch: approving it is vouching.
    """
    _, membership = _lock_pending(session, moderator, membership)
    if membership.verified_by == Verification.NONE:
        raise MustVouch()
    return _approve_and_invite(session, membership, moderator)


def vouch(session: Session, membership: Membership, moderator: User) -> str:
    """Vouch for a no-code request (the moderator knows the family), then approve it and email the invite."""
    group, membership = _lock_pending(session, moderator, membership)
    if membership.verified_by != Verification.NONE:
        raise CannotVouch()
    membership.verified_by = Verification.MODERATOR
    membership.vouched_by_user_id = moderator.id
    membership.updated_at = utcnow()
    session.add(membership)
    person = session.get(Person, membership.person_id)
    ledger.append(
        session, group.school_id, "vouch", actor=actor(moderator), channel=CHANNEL, person_ref=person.ref,
        group_id=group.id, child_id=membership.child_id, membership_id=membership.id,
        detail={"verified_by": Verification.MODERATOR.value, "was": Verification.NONE.value},
    )
    return _approve_and_invite(session, membership, moderator)


def reject(
    session: Session, membership: Membership, moderator: User, reason: str, *, tell_parent: bool = False
) -> None:
    """Decline a waiting request with a reason; the parent is emailed politely, with the reason only if told."""
    reason = check_reason(reason)
    group, membership = _lock_pending(session, moderator, membership)
    now = utcnow()
    move(membership, Status.REJECTED)
    membership.ended_at = now
    membership.end_reason = "rejected"
    membership.end_note = reason
    if membership.verified_by == Verification.CODE and membership.code_id is not None:
        # A declined request does not keep one of the child's carer places: if it was not a
        # genuine carer, the real one must still be able to use the code.
        session.exec(
            update(EnrolmentCode)
            .where(EnrolmentCode.id == membership.code_id, EnrolmentCode.uses_taken > 0)
            .values(uses_taken=EnrolmentCode.uses_taken - 1)
        )
    membership.holds_code_use = False
    session.add(membership)
    person = session.get(Person, membership.person_id)
    ledger.append(
        session, group.school_id, "reject", actor=actor(moderator), channel=CHANNEL, person_ref=person.ref,
        group_id=group.id, child_id=membership.child_id, membership_id=membership.id,
        # The ledger can never be edited or erased, so free text (which may name people) stays
        # in membership.end_note, erasable with the parent's details; the ledger keeps its hash.
        detail={
            "reason_sha256": hashlib.sha256(reason.encode("utf-8")).hexdigest(),
            "reason_shared": tell_parent,
            "verified_by": membership.verified_by,
        },
    )
    if person.email:  # an erased person has no address left to write to
        mail.queue(
            session, person.email, "request_declined", kind="request-declined", person_id=person.id,
            group=group, school=session.get(School, group.school_id), person=person,
            reason=reason if tell_parent else None,
        )
