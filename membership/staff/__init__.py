"""What school staff may see and do: their own school only.

Loaders authorise as they load: another school's group, child or person is simply not found,
so nothing about other schools can be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func
from sqlmodel import Session, select

from ..models import Child, Concern, DocumentKind, Group, Membership, PolicyVersion, Role, School, Status, User
from ..schools import SLUG
from ..validation import fits_id


class NotFound(Exception):
    """Not there, or not this school's (never said which)."""


def school_of(session: Session, user: User) -> School:
    """The school a staff account belongs to; NotFound for anyone who is not active staff."""
    if user.role != Role.STAFF or not user.active:
        raise NotFound("not staff")
    return session.get(School, user.school_id)


def group_in(session: Session, school: School, slug: str) -> Group:
    """One of this school's groups, or NotFound."""
    if not SLUG.fullmatch(slug or ""):
        raise NotFound(slug)  # not a slug at all (NUL, say, which PostgreSQL would refuse to compare)
    group = session.exec(select(Group).where(Group.slug == slug, Group.school_id == school.id)).first()
    if group is None:
        raise NotFound(slug)
    return group


def child_in(session: Session, school: School, child_id: int) -> tuple[Child, Group]:
    """One of this school's children with their group, or NotFound."""
    if not fits_id(child_id):
        raise NotFound(child_id)
    row = session.exec(
        select(Child, Group)
        .join(Group, Group.id == Child.group_id)
        .where(Child.id == child_id, Group.school_id == school.id)
    ).first()
    if row is None:
        raise NotFound(child_id)
    return row[0], row[1]


def membership_in(session: Session, school: School, membership_id: int) -> tuple[Membership, Group]:
    """One of this school's memberships with its group, or NotFound."""
    if not fits_id(membership_id):
        raise NotFound(membership_id)
    row = session.exec(
        select(Membership, Group)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.id == membership_id, Group.school_id == school.id)
    ).first()
    if row is None:
        raise NotFound(membership_id)
    return row[0], row[1]


def user_in(session: Session, school: School, user_id: int) -> User:
    """One of this school's accounts, or NotFound."""
    user = session.get(User, user_id) if fits_id(user_id) else None
    if user is None or user.school_id != school.id:
        raise NotFound(user_id)
    return user


def concern_in(session: Session, school: School, concern_id: int) -> Concern:
    """One of this school's concerns, or NotFound."""
    concern = session.get(Concern, concern_id) if fits_id(concern_id) else None
    if concern is None or concern.school_id != school.id:
        raise NotFound(concern_id)
    return concern


@dataclass
class GroupSummary:
    """A group on the staff dashboard."""

    group: Group
    members: int
    pending: int
    must_reagree: int


def group_summaries(session: Session, school: School) -> list[GroupSummary]:
    """Every group of the school with its numbers, in two queries whatever the size."""
    groups = session.exec(select(Group).where(Group.school_id == school.id).order_by(Group.name)).all()
    active = (Status.APPROVED, Status.INVITED, Status.LINK_USED)
    keys = (Membership.group_id, Membership.status, Membership.needs_reagree)
    rows = session.exec(
        select(*keys, func.count()).where(Membership.group_id.in_([g.id for g in groups])).group_by(*keys)
    ).all()
    numbers: dict[int, list[int]] = {g.id: [0, 0, 0] for g in groups}
    for group_id, status, needs_reagree, count in rows:
        if status in active:
            numbers[group_id][0] += count
            numbers[group_id][2] += count if needs_reagree else 0
        elif status == Status.PENDING_APPROVAL:
            numbers[group_id][1] += count
    return [GroupSummary(g, *numbers[g.id]) for g in groups]


@dataclass
class DocumentStatus:
    """A document's current version and whether its review is overdue."""

    kind: DocumentKind
    current: PolicyVersion | None
    overdue: bool


def documents(session: Session, school: School, today: date) -> list[DocumentStatus]:
    """The current version of each document, flagged when past its review date."""
    newest = (
        select(PolicyVersion.kind, func.max(PolicyVersion.number).label("number"))
        .where(PolicyVersion.school_id == school.id)
        .group_by(PolicyVersion.kind)
        .subquery()
    )
    rows = session.exec(
        select(PolicyVersion).join(
            newest, (PolicyVersion.kind == newest.c.kind) & (PolicyVersion.number == newest.c.number)
        ).where(PolicyVersion.school_id == school.id)
    ).all()
    by_kind = {row.kind: row for row in rows}
    result = []
    for kind in DocumentKind:
        current = by_kind.get(kind.value)
        overdue = bool(current and current.review_due and current.review_due < today)
        result.append(DocumentStatus(kind, current, overdue))
    return result
