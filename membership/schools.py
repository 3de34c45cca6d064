"""Setting a school up: the school itself, its groups, children, carer invitations and accounts."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from sqlalchemy import and_, bindparam
from sqlmodel import Session, select

from . import codes, ledger, mail, passwords, policies, tokens
from .db import BEFORE_WRITE_LOCK
from .models import (
    CarerInvitation,
    Child,
    EnrolmentCode,
    EnrolmentCodeView,
    Group,
    GroupModerator,
    GroupView,
    Role,
    School,
    SchoolView,
    User,
    read_views,
    utcnow,
)
from .urls import external_url
from .validation import Invalid
from .validation import email as valid_email

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")


def check_slug(slug: str) -> str:
    """A URL-safe lower-case slug, or Invalid."""
    if not SLUG.fullmatch(slug or ""):
        raise Invalid("Use lower-case letters, numbers and hyphens only, like year-3-oak")
    return slug


def check_text(value: str | None, what: str, max_length: int, *, required: bool = True) -> str:
    """A stripped single value that fits its column, or Invalid (never a database error)."""
    text = (value or "").strip()
    if required and not text:
        raise Invalid(f"Enter the {what}")
    if len(text) > max_length:
        raise Invalid(f"The {what} must be {max_length} characters or fewer")
    return text


def academic_year(today=None) -> str:
    """The UK academic year containing today, like 2026-27 (it starts on 1 September)."""
    today = today or utcnow().date()
    start = today.year if today.month >= 9 else today.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


def create_school(session: Session, slug: str, name: str, concerns_email: str) -> School:
    """Create a school with an empty ledger chain and Classgate's default documents."""
    school = School(
        slug=check_slug(slug), name=check_text(name, "school's name", 120), concerns_email=valid_email(concerns_email)
    )
    session.add(school)
    session.flush()
    ledger.start_chain(session, school.id)
    policies.publish_defaults(session, school.id)
    return school


def create_group(
    session: Session,
    school: School,
    slug: str,
    name: str,
    *,
    description: str = "",
    platform: str = "whatsapp",
    chat_url: str = "",
    requires_approval: bool = False,
    year: str | None = None,
) -> Group:
    """Add a class or year group to a school."""
    group = Group(
        school_id=school.id, slug=check_slug(slug), name=check_text(name, "group's name", 100),
        description=check_text(description, "description", 500, required=False),
        platform=platform, chat_url=check_text(chat_url, "chat link", 500, required=False),
        requires_approval=requires_approval,
        academic_year=year or academic_year(),
    )
    session.add(group)
    session.flush()
    return group


@dataclass
class NewChild:
    """A child just added, with the code to print (it is never shown again)."""

    child: Child
    code: str


def add_child(session: Session, group: Group, display_name: str, uses_allowed: int = 2) -> NewChild:
    """Add a child to a group and give them a fresh enrolment code."""
    child = Child(group_id=group.id, display_name=display_name)
    session.add(child)
    session.flush()
    return NewChild(child, codes.issue_code(session, child, uses_allowed))


def invite_carer(session: Session, group: Group, child: Child, email: str) -> CarerInvitation:
    """Email a carer on the school's records a personal, single-use link for this child."""
    nonce, nonce_hash = tokens.new_nonce()
    email = valid_email(email)  # stored as the journey compares it, so a mixed-case address still matches
    invitation = CarerInvitation(
        child_id=child.id, email=email, nonce_hash=nonce_hash,
        expires_at=utcnow() + tokens.lifetime("carer-invitation"),
    )
    session.add(invitation)
    session.flush()
    token = tokens.issue("carer-invitation", {"c": invitation.id, "n": nonce})
    school = session.get(School, group.school_id)
    mail.queue(
        session, email, "carer_invitation", kind="carer-invitation", group=group, school=school, child=child,
        link=external_url("join.use_invitation", slug=group.slug, token=token),
        days=tokens.lifetime("carer-invitation").days,
    )
    return invitation


def create_user(
    session: Session,
    school: School,
    email: str,
    role: Role,
    *,
    name: str = "",
    groups: list[Group] = (),
    password: str | None = None,
) -> User:
    """Create a staff or moderator account; without a password, email a set-password link."""
    user = User(school_id=school.id, email=valid_email(email), name=name, role=role)
    if password is not None:
        set_password(user, password)
    session.add(user)
    session.flush()
    for group in groups:
        if group.school_id != school.id:
            raise Invalid(f"{group.slug} belongs to another school")
        session.add(GroupModerator(group_id=group.id, user_id=user.id))
    session.flush()
    return user


def password_fingerprint(user: User) -> str:
    """A short digest of the current password hash: a set-password link dies when it changes."""
    return hashlib.sha256((user.password_hash or "unset").encode()).hexdigest()[:16]


def send_set_password(session: Session, user: User) -> None:
    """Email a single-use link to choose a password."""
    token = tokens.issue("set-password", {"u": user.id, "f": password_fingerprint(user)})
    school = session.get(School, user.school_id)
    mail.queue(
        session, user.email, "set_password", kind="set-password", user=user, school=school,
        link=external_url("account.set_password", token=token),
        hours=int(tokens.lifetime("set-password").total_seconds() // 3600),
    )


def user_for_set_password(session: Session, token: str) -> User:
    """The account a set-password link is for; raises TokenInvalid/TokenExpired once it is dead."""
    payload = tokens.load("set-password", token)
    user = session.get(User, payload.get("u")) if isinstance(payload.get("u"), int) else None
    if user is None or not user.active or not hmac.compare_digest(str(payload.get("f")), password_fingerprint(user)):
        raise tokens.TokenInvalid("set-password")
    return user


def set_password(user: User, password: str) -> None:
    """Set a user's password (at least passwords.MIN_LENGTH characters)."""
    if len(password) < passwords.MIN_LENGTH:
        raise Invalid(f"The password must be at least {passwords.MIN_LENGTH} characters")
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = utcnow()


def group_by_slug(session: Session, slug: str) -> Group | None:
    """A group by its slug (None, without asking the database, for what cannot be one)."""
    if not SLUG.fullmatch(slug or ""):
        return None
    return session.exec(select(Group).where(Group.slug == slug)).first()


def group_and_school(session: Session, slug: str) -> tuple[GroupView, SchoolView] | None:
    """A group by its slug with its school, in one statement (None for what cannot be a slug).

    Both are read as rows (models.views), which costs a fraction of loading the models, on the
    pages every parent opens.
    """
    if not SLUG.fullmatch(slug or ""):
        return None
    return read_views(session.connection().execute(_GROUP_AND_SCHOOL, {"slug": slug}).first(), GroupView, SchoolView)


def group_with_code(
    session: Session, slug: str, raw: str
) -> tuple[GroupView, SchoolView, EnrolmentCodeView | None] | None:
    """A group by its slug, its school, and the code a parent typed on its join page, as rows, in one statement.

    None when there is no such group; the code is None when it is not one of the group's codes
    or cannot be used (codes.usable).
    """
    if not SLUG.fullmatch(slug or ""):
        return None
    code, digest = codes.typed(raw)
    row = session.connection().execute(_GROUP_WITH_CODE, {"slug": slug, "digest": digest}).first()
    if row is None:
        return None
    group, school, found = read_views(row, GroupView, SchoolView, EnrolmentCodeView)
    try:
        found = codes.usable(session, code, digest, found)
    except codes.CodeRefused:
        found = None
    return group, school, found


# Built once: nearly every parent page runs it, and a statement built per call costs more than the
# query. Its cache key is worked out once too; only the slug is bound on each call. Run on the
# session's connection, it gives plain rows of both tables' columns. A request that writes (a
# parent's details) reads the group before it queues for SQLite's write lock.
_GROUP_AND_SCHOOL = (
    select(Group, School).join(School, School.id == Group.school_id).where(Group.slug == bindparam("slug"))
    .execution_options(**{BEFORE_WRITE_LOCK: True})
)
# The code is looked up by its digest (unique), then kept only if its child is in the group.
_GROUP_WITH_CODE = (
    select(Group, School, EnrolmentCode)
    .join(School, School.id == Group.school_id)
    .outerjoin(
        EnrolmentCode.__table__.join(Child.__table__, Child.id == EnrolmentCode.child_id),
        and_(EnrolmentCode.code_hmac == bindparam("digest"), Child.group_id == Group.id),
    )
    .where(Group.slug == bindparam("slug"))
)


def school_by_slug(session: Session, slug: str) -> School | None:
    """A school by its slug (None, without asking the database, for what cannot be one)."""
    if not SLUG.fullmatch(slug or ""):
        return None
    return session.exec(select(School).where(School.slug == slug)).first()
