"""What moderators may see and do: access to their groups only, and the moderator notice.

Loaders here authorise as they load: a group the moderator does not moderate, or a membership
outside that group, is simply not found, so slugs and ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func
from sqlmodel import Session, select

from .. import ledger, policies
from ..models import (
    Child,
    DocumentKind,
    Group,
    GroupModerator,
    Membership,
    Person,
    PolicyVersion,
    Role,
    Status,
    User,
    utcnow,
)
from ..schools import SLUG
from ..validation import fits_id


class NotFound(Exception):
    """Not there, or not this moderator's to see (never said which)."""


def groups_for(session: Session, user: User) -> list[Group]:
    """The groups a moderator currently moderates, by name."""
    return list(
        session.exec(
            select(Group)
            .join(GroupModerator, GroupModerator.group_id == Group.id)
            .where(
                GroupModerator.user_id == user.id,
                GroupModerator.stood_down_at.is_(None),
                Group.school_id == user.school_id,
            )
            .order_by(Group.name)
        ).all()
    )


def group_for(session: Session, user: User, slug: str) -> Group:
    """A group this moderator moderates, or NotFound."""
    if not SLUG.fullmatch(slug or ""):
        raise NotFound(slug)  # not a slug at all (NUL, say, which PostgreSQL would refuse to compare)
    group = session.exec(
        select(Group)
        .join(GroupModerator, GroupModerator.group_id == Group.id)
        .where(
            Group.slug == slug,
            Group.school_id == user.school_id,
            GroupModerator.user_id == user.id,
            GroupModerator.stood_down_at.is_(None),
        )
    ).first()
    if group is None or not user.active or user.role != Role.MODERATOR:
        raise NotFound(slug)
    return group


def membership_in(session: Session, group: Group, membership_id: int) -> Membership:
    """A membership of this group, or NotFound."""
    membership = session.get(Membership, membership_id) if fits_id(membership_id) else None
    if membership is None or membership.group_id != group.id:
        raise NotFound(membership_id)
    return membership


@dataclass
class Row:
    """A membership with the person and child a moderator needs to recognise it."""

    membership: Membership
    person: Person
    child: Child | None


def _rows(session: Session, group: Group, *conditions) -> list[Row]:
    query = (
        select(Membership, Person, Child)
        .join(Person, Person.id == Membership.person_id)
        .outerjoin(Child, Child.id == Membership.child_id)
        .where(Membership.group_id == group.id, *conditions)
        .order_by(Membership.created_at)
    )
    return [Row(*row) for row in session.exec(query).all()]


def pending(session: Session, group: Group) -> list[Row]:
    """Requests waiting for a moderator, oldest first."""
    return _rows(session, group, Membership.status == Status.PENDING_APPROVAL)


@dataclass
class GroupCounts:
    """The numbers on a moderator's dashboard for one group."""

    pending: int = 0
    members: int = 0
    must_reagree: int = 0
    awaiting_chat: int = 0
    to_take_out: int = 0  # left or removed after using their link, not yet taken out of the chat


ACTIVE = (Status.APPROVED, Status.INVITED, Status.LINK_USED)


def counts(session: Session, group_ids: list[int]) -> dict[int, GroupCounts]:
    """Pending requests, members, members to re-agree, links used but not seen in the chat, people to take out of it."""
    result = {group_id: GroupCounts() for group_id in group_ids}
    if not group_ids:
        return result
    take_out = and_(Membership.chat_removal_due_at.is_not(None), Membership.chat_removed_at.is_(None))
    keys = (
        Membership.group_id, Membership.status, Membership.needs_reagree, Membership.seen_in_chat_at.is_(None),
        take_out,
    )
    rows = session.exec(select(*keys, func.count()).where(Membership.group_id.in_(group_ids)).group_by(*keys)).all()
    for group_id, status, needs_reagree, not_seen, due, number in rows:
        entry = result[group_id]
        if status == Status.PENDING_APPROVAL:
            entry.pending += number
        if status in ACTIVE:
            entry.members += number
            if needs_reagree:
                entry.must_reagree += number
        if status == Status.LINK_USED and not_seen:
            entry.awaiting_chat += number
        if due:
            entry.to_take_out += number
    return result


def current_notice(session: Session, school_id: int) -> PolicyVersion:
    """The moderator notice a moderator accepts today."""
    return policies.current(session, school_id, DocumentKind.MODERATOR_NOTICE)


def needs_notice(session: Session, user: User) -> bool:
    """True until the moderator has accepted the newest material version of the moderator notice."""
    if user.notice_version_id is None:
        return True
    accepted = session.get(PolicyVersion, user.notice_version_id)
    newest_material = session.exec(
        select(func.max(PolicyVersion.number)).where(
            PolicyVersion.school_id == user.school_id,
            PolicyVersion.kind == DocumentKind.MODERATOR_NOTICE,
            PolicyVersion.material.is_(True),
        )
    ).one()
    return accepted is None or (newest_material or 0) > accepted.number


def accept_notice(session: Session, user: User, version_id: int) -> None:
    """Record that a moderator accepted this version of the notice (it must be the current one)."""
    version = current_notice(session, user.school_id)
    if version.id != version_id:
        raise policies.NoPolicy("the moderator notice changed while it was being read")
    user.notice_version_id = version.id
    user.notice_accepted_at = utcnow()
    session.add(user)
    ledger.append(
        session, user.school_id, "accept_moderator_notice", actor=f"user:{user.id}", channel="web",
        document=version, statement=policies.agreement_statement(version), detail={"role": user.role},
    )


def actor(user: User) -> str:
    """How the ledger names a moderator or staff member acting."""
    return f"user:{user.id}"
