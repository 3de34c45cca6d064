"""Parents' rights over what Classgate holds: leaving a group, erasing their details, and retention.

Also the moderators' "remove them from the chat" task, which leaving and removal both create:
Classgate cannot take anyone out of a WhatsApp group itself, so a moderator must, and the
console keeps the task in view until they say it is done.

Plain functions over a Session; the caller commits.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, delete, exists, func, or_, update
from sqlmodel import Session, select

from . import codes, invites, ledger, mail
from .formatting import readable_mobile
from .models import (
    Child,
    Concern,
    ConcernStatus,
    EnrolmentCode,
    Group,
    GroupBlock,
    GroupModerator,
    Invite,
    Membership,
    OutboxMessage,
    ParentSignIn,
    Person,
    Status,
    User,
    Verification,
    utcnow,
)
from .states import ENDED, move, person_actor
from .urls import external_url

# What a membership is while it can still be left: anything that has not ended.
LEAVABLE = tuple(status for status in Status if status not in ENDED)
# Starts whose email was never confirmed are erased after this long, whatever the retention period.
UNCONFIRMED_FOR = timedelta(days=1)
ERASED_ADDRESS = ""
PURGE_BATCH = 500


class NotLeavable(Exception):
    """The membership has already ended (left, removed, declined or expired)."""


def block_hmac(kind: str, value: str) -> str:
    """A keyed hash of an email or mobile, so a block can recognise it without keeping it."""
    key = current_app.config["CODE_HMAC_KEY"].encode()
    return hmac.new(key, f"block-{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def block_keys(email: str, mobile: str | None) -> dict[str, str | None]:
    """The values BLOCK_MATCHES is run with: this email and E.164 mobile, plain and hashed (no mobile: NULL)."""
    return {
        "email": email, "email_hmac": block_hmac("email", email),
        "mobile": mobile or None, "mobile_hmac": block_hmac("mobile", mobile) if mobile else None,
    }


# The SQL condition for a group block naming an email or mobile, plain or hashed (so an erased
# block still matches). Built once, with block_keys() bound; a NULL mobile matches nothing.
BLOCK_MATCHES = or_(
    GroupBlock.email == bindparam("email"), GroupBlock.email_hmac == bindparam("email_hmac"),
    GroupBlock.mobile == bindparam("mobile"), GroupBlock.mobile_hmac == bindparam("mobile_hmac"),
)


# --- The chat-removal task ----------------------------------------------------------------------


def _used_a_link(session: Session, membership: Membership) -> bool:
    """True when any of this membership's invites was redeemed: they may be in the chat now."""
    return session.exec(
        select(Invite.id).where(Invite.membership_id == membership.id, Invite.used_at.is_not(None))
    ).first() is not None


def _moderators(session: Session, group: Group) -> list[User]:
    return list(session.exec(
        select(User)
        .join(GroupModerator, GroupModerator.user_id == User.id)
        .where(GroupModerator.group_id == group.id, GroupModerator.stood_down_at.is_(None), User.active.is_(True))
        .order_by(User.id)
    ).all())


def ask_for_chat_removal(
    session: Session, membership: Membership, *, why: str, skip: User | None = None
) -> bool:
    """Put the member on the moderators' 'remove from the chat' list and email them; False if never in it.

    why is "left", "removed" or "removed_by_school" and picks the email's wording; skip is a
    moderator who already knows (the one who removed them, shown the checklist on the spot).
    """
    if not _used_a_link(session, membership):
        return False
    membership.chat_removal_due_at = utcnow()
    membership.chat_removed_at = None
    session.add(membership)
    group = session.get(Group, membership.group_id)
    person = session.get(Person, membership.person_id)
    child = session.get(Child, membership.child_id) if membership.child_id else None
    for moderator in _moderators(session, group):
        if skip is not None and moderator.id == skip.id:
            continue
        mail.queue(
            session, moderator.email, "chat_removal", kind="chat-removal", about_person_id=person.id,
            group=group, moderator=moderator,
            name=person.name or "A member who has since erased their details",
            mobile=readable_mobile(person.mobile) if person.mobile else None,
            child=child.display_name if child else (membership.claimed_child_name or ""),
            why=why, link=external_url("moderate.list_members", slug=group.slug),
        )
    return True


@dataclass
class ChatRemoval:
    """One person a moderator still has to take out of the chat."""

    membership: Membership
    person: Person
    child_name: str


def chat_removals(session: Session, group: Group) -> list[ChatRemoval]:
    """Everyone due to be taken out of this group's chat, oldest first, in one statement."""
    rows = session.exec(
        select(Membership, Person, Child.display_name)
        .join(Person, Person.id == Membership.person_id)
        .outerjoin(Child, Child.id == Membership.child_id)
        .where(
            Membership.group_id == group.id,
            Membership.chat_removal_due_at.is_not(None),
            Membership.chat_removed_at.is_(None),
        )
        .order_by(Membership.chat_removal_due_at, Membership.id)
    ).all()
    return [ChatRemoval(m, p, child or (m.claimed_child_name or "")) for m, p, child in rows]


def mark_removed_from_chat(session: Session, membership: Membership, moderator: User) -> bool:
    """A moderator took this person out of the chat; False when it was already done (nothing changes)."""
    flipped = session.exec(
        update(Membership)
        .where(
            Membership.id == membership.id,
            Membership.chat_removal_due_at.is_not(None),
            Membership.chat_removed_at.is_(None),
        )
        .values(chat_removed_at=utcnow(), chat_removed_by_user_id=moderator.id)
    )
    if flipped.rowcount != 1:
        return False
    session.refresh(membership)
    group = session.get(Group, membership.group_id)
    person = session.get(Person, membership.person_id)
    ledger.append(
        session, group.school_id, "removed_from_chat", actor=f"user:{moderator.id}", channel="moderator",
        person_ref=person.ref, group_id=group.id, child_id=membership.child_id, membership_id=membership.id,
    )
    return True


# --- Leaving ------------------------------------------------------------------------------------


def _lock(session: Session, membership: Membership) -> Membership:
    return session.exec(
        select(Membership).where(Membership.id == membership.id).with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()


def leave(session: Session, membership: Membership, *, channel: str = "me") -> bool:
    """The parent leaves: the membership ends, open links die, moderators are asked to take them out of the chat.

    Never a penalty: a code's carer place goes back to the child, so they (or the other carer)
    can join again. Returns True when the moderators were given a chat-removal task.
    Raises NotLeavable when the membership has already ended.
    """
    membership = _lock(session, membership)
    if membership.status in ENDED:
        raise NotLeavable(membership.id)
    group = session.get(Group, membership.group_id)
    person = session.get(Person, membership.person_id)
    was = membership.status
    if was == Status.DETAILS_GIVEN:
        codes.end_unconfirmed(session, membership.id, Status.LEFT, reason="left")
        session.refresh(membership)
    else:
        move(membership, Status.LEFT)
        membership.ended_at = utcnow()
        membership.end_reason = "left"
        if membership.verified_by == Verification.CODE and membership.code_id is not None:
            session.exec(
                update(EnrolmentCode)
                .where(EnrolmentCode.id == membership.code_id, EnrolmentCode.uses_taken > 0)
                .values(uses_taken=EnrolmentCode.uses_taken - 1)
            )
        session.add(membership)
    invites.revoke(session, membership, actor=person_actor(person), channel=channel)
    ledger.append(
        session, group.school_id, "withdraw", actor=person_actor(person), channel=channel,
        person_ref=person.ref, group_id=group.id, child_id=membership.child_id, membership_id=membership.id,
        detail={"left_group": True, "was": str(was)},
    )
    task = ask_for_chat_removal(session, membership, why="left")
    if person.email:
        mail.queue(
            session, person.email, "left", kind="left", person_id=person.id, group=group, person=person,
            join_link=external_url("join.join_group", slug=group.slug),
        )
    session.flush()
    return task


# --- Erasure ------------------------------------------------------------------------------------


def erase_person(session: Session, person: Person, *, actor: str, channel: str, why: str) -> bool:
    """Erase one person's name, email and mobile and everything else they typed; False if already erased.

    Live memberships are left first (so moderators still get the chat-removal task, while the
    name is known). The ledger is untouched: it only ever held the pseudonymous reference, so it
    still verifies. A group block on a removed person keeps keyed hashes in place of the
    address and mobile, so erasing is not a way back into a group they were removed from.
    """
    person = session.exec(
        select(Person).where(Person.id == person.id).with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()
    if person.erased_at is not None:
        return False
    memberships = session.exec(select(Membership).where(Membership.person_id == person.id)).all()
    for membership in memberships:
        if membership.status not in ENDED:
            leave(session, membership, channel=channel)
    now = utcnow()
    ids = [m.id for m in memberships]
    if ids:
        session.exec(
            update(Membership).where(Membership.id.in_(ids)).values(claimed_child_name=None, end_note=None)
        )
        for block in session.exec(select(GroupBlock).where(GroupBlock.membership_id.in_(ids))).all():
            if block.email:
                block.email_hmac, block.email = block_hmac("email", block.email), None
            if block.mobile:
                block.mobile_hmac, block.mobile = block_hmac("mobile", block.mobile), None
            session.add(block)
    # Emails to them: the copies go, and one still waiting to be sent is never sent.
    mine = OutboxMessage.person_id == person.id
    session.exec(
        update(OutboxMessage).where(mine)
        .values(to_addr=ERASED_ADDRESS, subject="(erased)", body_text="(erased)\n", last_error=None)
    )
    session.exec(
        update(OutboxMessage)
        .where(mine, OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None))
        .values(failed_at=now, last_error="not sent: the recipient erased their details")
    )
    # Sent emails to moderators that named them: the moderators have their copies; ours go.
    # One not yet sent still goes (the moderator must know whom to take out of the chat) and is
    # scrubbed by the retention job once it has.
    _scrub_sent_about(session, [person.id])
    if person.email:
        others = session.exec(
            select(func.count()).select_from(Person)
            .where(Person.email == person.email, Person.id != person.id, Person.erased_at.is_(None))
        ).one()
        if not others:
            session.exec(delete(ParentSignIn).where(ParentSignIn.email == person.email))
    schools = session.exec(
        select(Group.school_id).join(Membership, Membership.group_id == Group.id)
        .where(Membership.person_id == person.id).distinct()
    ).all()
    person.name = person.email = person.mobile = None
    person.erased_at = now
    session.add(person)
    for school_id in sorted(schools):
        ledger.append(
            session, school_id, "erase", actor=actor, channel=channel, person_ref=person.ref,
            detail={"why": why},
        )
    session.flush()
    return True


def _scrub_sent_about(session: Session, person_ids: list[int]) -> int:
    """Blank the stored copies of sent emails to others that name these people; how many."""
    result = session.exec(
        update(OutboxMessage)
        .where(
            OutboxMessage.about_person_id.in_(person_ids), OutboxMessage.sent_at.is_not(None),
            OutboxMessage.body_text != "(erased)\n",
        )
        .values(subject="(erased)", body_text="(erased)\n")
    )
    return result.rowcount


def erase_email(session: Session, email: str, *, channel: str = "me") -> int:
    """A parent erases their details: every person record under this email. Returns how many."""
    people = session.exec(
        select(Person).where(Person.email == email, Person.erased_at.is_(None)).order_by(Person.id)
    ).all()
    erased = 0
    for person in people:
        erased += erase_person(session, person, actor=person_actor(person), channel=channel, why="asked")
    # A sign-in row can outlive every person under the address (joined, then all erased).
    session.exec(delete(ParentSignIn).where(ParentSignIn.email == email))
    return erased


# --- Retention ----------------------------------------------------------------------------------


@dataclass
class PurgeCounts:
    """What the retention job erased (or, in a dry run, would erase)."""

    people: dict[str, int] = field(default_factory=lambda: {"left": 0, "removed": 0, "rejected": 0, "unconfirmed": 0})
    sign_in_links: int = 0
    emails: int = 0
    emails_blanked: int = 0  # sent to moderators, naming someone who has since erased their details
    concerns: int = 0

    @property
    def total_people(self) -> int:
        """Everyone erased, whatever the reason."""
        return sum(self.people.values())


def _purgeable(now: datetime, cutoff: datetime):
    """A membership that no longer needs its person's details: ended long enough ago, or never confirmed."""
    never_confirmed = and_(Membership.email_verified_at.is_(None), Membership.created_at < now - UNCONFIRMED_FOR)
    ended_long_ago = and_(
        Membership.status.in_([Status.LEFT, Status.REMOVED, Status.REJECTED]),
        Membership.ended_at.is_not(None),
        Membership.ended_at < cutoff,
    )
    return or_(never_confirmed, ended_long_ago)


def _category(membership: Membership) -> str:
    if membership.email_verified_at is None:
        return "unconfirmed"
    return {"left": "left", "removed": "removed", "rejected": "rejected"}.get(membership.status, "left")


def purge(session: Session, *, now: datetime | None = None, retention_days: int | None = None,
          dry_run: bool = False) -> PurgeCounts:
    """Erase what the retention period says is no longer needed; safe to run again (it finds nothing new).

    A person is erased only when every one of their memberships qualifies, so nobody still in a
    group (or recently out of one) loses their details.
    """
    now = now or utcnow()
    days = current_app.config["RETENTION_DAYS"] if retention_days is None else retention_days
    cutoff = now - timedelta(days=days)
    counts = PurgeCounts()
    mine = Membership.person_id == Person.id
    has_membership = exists().where(mine)
    keeps_details = exists().where(mine, ~_purgeable(now, cutoff))
    candidates = (
        select(Person.id)
        .where(Person.erased_at.is_(None), has_membership, ~keeps_details)
        .order_by(Person.id)
    )
    last_id = 0
    while True:
        batch = session.exec(candidates.where(Person.id > last_id).limit(PURGE_BATCH)).all()
        if not batch:
            break
        last_id = batch[-1]
        latest = {}
        for membership in session.exec(
            select(Membership).where(Membership.person_id.in_(batch)).order_by(Membership.id)
        ).all():
            latest[membership.person_id] = membership
        for person_id in batch:
            membership = latest[person_id]
            counts.people[_category(membership)] += 1
            if dry_run:
                continue
            if membership.status == Status.DETAILS_GIVEN:
                codes.end_unconfirmed(session, membership.id, Status.EXPIRED, reason="never confirmed")
            erase_person(session, session.get(Person, person_id), actor="system", channel="retention",
                         why="retention")
        if not dry_run:
            session.commit()
    old_links = ParentSignIn.created_at < now - UNCONFIRMED_FOR
    # Spelled out with IS NOT NULL so that NOT old_mail is never NULL (and so never silently false).
    old_mail = or_(
        and_(OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at < cutoff),
        and_(OutboxMessage.failed_at.is_not(None), OutboxMessage.failed_at < cutoff),
    )
    old_concerns = and_(
        Concern.status == ConcernStatus.CLOSED, Concern.closed_at < cutoff, Concern.contact_erased_at.is_(None),
        or_(Concern.contact_name.is_not(None), Concern.contact_email.is_not(None), Concern.contact_phone.is_not(None)),
    )
    counts.sign_in_links = session.exec(select(func.count()).select_from(ParentSignIn).where(old_links)).one()
    counts.emails = session.exec(select(func.count()).select_from(OutboxMessage).where(old_mail)).one()
    counts.concerns = session.exec(select(func.count()).select_from(Concern).where(old_concerns)).one()
    erased_since_sent = and_(
        OutboxMessage.sent_at.is_not(None), OutboxMessage.body_text != "(erased)\n",
        OutboxMessage.about_person_id.in_(select(Person.id).where(Person.erased_at.is_not(None))),
    )
    counts.emails_blanked = session.exec(
        select(func.count()).select_from(OutboxMessage).where(erased_since_sent, ~old_mail)
    ).one()
    if not dry_run:
        session.exec(update(OutboxMessage).where(erased_since_sent).values(subject="(erased)", body_text="(erased)\n"))
        session.exec(delete(ParentSignIn).where(old_links))
        session.exec(delete(OutboxMessage).where(old_mail))
        session.exec(
            update(Concern).where(old_concerns)
            .values(contact_name=None, contact_email=None, contact_phone=None, contact_erased_at=now)
        )
        session.commit()
    return counts
