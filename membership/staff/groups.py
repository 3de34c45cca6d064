"""Staff operations on groups and their moderators.

Plain functions over a Session. Bad input raises GroupInvalid (every field's message at once)
or validation.Invalid; an action the current state does not allow raises Refused. Both are
raised before anything is written, so a refused request changes nothing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from .. import ledger, mail, schools
from ..models import Group, GroupModerator, Platform, Role, School, User, utcnow
from ..moderation import actor
from ..moderation.members import check_chat_url, fingerprint
from ..urls import external_url
from ..validation import Invalid, has_control
from ..validation import email as valid_email

ACADEMIC_YEAR = re.compile(r"^([0-9]{4})-([0-9]{2})$")  # ASCII digits: \d would take ２０２６ too
SLUG_BASE_MAX = 40  # leaves room for "-2026-27-99" within the 60 characters of Group.slug
NAME_MAX = 80  # User.name


class GroupInvalid(Invalid):
    """A group form with mistakes: errors maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class Refused(Exception):
    """Not possible as things stand; the message says why, for the member of staff."""


@dataclass
class GroupDetails:
    """What staff type about a group (the slug is not among them: it is generated once)."""

    name: str = ""
    description: str = ""
    academic_year: str = ""
    platform: str = Platform.WHATSAPP.value
    chat_url: str = ""
    requires_approval: bool = False


def _check_academic_year(value: str) -> str:
    """An academic year like 2026-27, the second year following the first."""
    match = ACADEMIC_YEAR.match((value or "").strip())
    if not match or (int(match.group(1)) + 1) % 100 != int(match.group(2)):
        raise Invalid("Enter the academic year like 2026-27")
    return match.group(0)


def _checked(details: GroupDetails) -> GroupDetails:
    """The details in normal form, or GroupInvalid naming every field that is wrong."""
    errors: dict[str, str] = {}
    clean = GroupDetails(requires_approval=bool(details.requires_approval))
    checks = {
        "name": lambda: _check_text(details.name, "group's name", 100),
        "description": lambda: _check_text(details.description, "description", 500, required=False, line_breaks=True),
        "academic_year": lambda: _check_academic_year(details.academic_year),
        "platform": lambda: _check_platform(details.platform),
    }
    for field, check in checks.items():
        try:
            setattr(clean, field, check())
        except Invalid as exc:
            errors[field] = str(exc)
    url = (details.chat_url or "").strip()
    if url and "platform" not in errors:
        try:
            # The moderators' own rules for a chat link; it depends on the platform being set.
            clean.chat_url = check_chat_url(Group(platform=clean.platform), url)
        except Invalid as exc:
            errors["chat_url"] = str(exc)
    if errors:
        raise GroupInvalid(errors)
    return clean


def _check_text(value: str, what: str, limit: int, *, required: bool = True, line_breaks: bool = False) -> str:
    """A name or description within its limit, with no control characters or text-direction overrides."""
    text = schools.check_text(value, what, limit, required=required)
    if has_control(text, line_breaks=line_breaks):
        raise Invalid(f"The {what} must only include letters, numbers and punctuation")
    return text


def _check_platform(value: str) -> str:
    """One of the platforms Classgate knows."""
    if value not in {p.value for p in Platform}:
        raise Invalid("Choose where the group chat is")
    return value


def slug_base(name: str) -> str:
    """A URL slug from a group's name: 'Year 2 Ash' → 'year-2-ash' (accents dropped)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:SLUG_BASE_MAX].strip("-")
    return base or "group"


def _free_slug(session: Session, name: str, year: str) -> str:
    """The first free slug for a name: the name, then with the academic year, then numbered.

    Slugs are unique across every school (they are the join URL), so the check is too.
    """
    base = slug_base(name)
    taken = set(session.exec(select(Group.slug).where(Group.slug.startswith(base))).all())
    candidates = [base, f"{base}-{year}", *(f"{base}-{year}-{n}" for n in range(2, 100))]
    for candidate in candidates:
        if candidate not in taken:
            return schools.check_slug(candidate)
    raise Refused("There are too many groups with this name. Choose a different name.")


def create_group(session: Session, school: School, by: User, details: GroupDetails) -> Group:
    """Add a group with a slug made from its name; the slug never changes afterwards."""
    clean = _checked(details)
    for _attempt in range(3):
        slug = _free_slug(session, clean.name, clean.academic_year)
        try:
            # A savepoint, so a slug taken at the same moment by another request is simply retried.
            with session.begin_nested():
                group = schools.create_group(
                    session, school, slug, clean.name, description=clean.description, platform=clean.platform,
                    chat_url=clean.chat_url, requires_approval=clean.requires_approval, year=clean.academic_year,
                )
        except IntegrityError:
            continue
        if group.chat_url:
            _chat_link_entry(session, group, by)
        return group
    raise Refused("Another group with this name was being added at the same time. Please try again.")


def update_group(session: Session, group: Group, by: User, details: GroupDetails) -> bool:
    """Change a group's details (never its slug: printed letters carry it); False when nothing changed."""
    clean = _checked(details)
    fields = ("name", "description", "academic_year", "platform", "chat_url", "requires_approval")
    changed = [f for f in fields if getattr(group, f) != getattr(clean, f)]
    if not changed:
        return False
    for field in changed:
        setattr(group, field, getattr(clean, field))
    session.add(group)
    session.flush()
    if "chat_url" in changed and group.chat_url:
        _chat_link_entry(session, group, by)
    return True


def _chat_link_entry(session: Session, group: Group, by: User) -> None:
    """The same record a moderator's chat-link change makes: only the link's fingerprint, never the link."""
    ledger.append(
        session, group.school_id, "chat_link_set", actor=actor(by), channel="staff",
        group_id=group.id, detail={"sha256": fingerprint(group.chat_url)},
    )


def details_of(group: Group) -> GroupDetails:
    """A group's current details, to fill in the edit form."""
    return GroupDetails(
        group.name, group.description, group.academic_year, group.platform, group.chat_url, group.requires_approval
    )


# --- Moderators ---------------------------------------------------------------------------------


@dataclass
class ModeratorRow:
    """A moderator of a group, with when they were appointed."""

    user: User
    appointed_at: datetime
    group_id: int


def moderators(session: Session, group_ids: list[int]) -> list[ModeratorRow]:
    """The current moderators of these groups, by name, in one statement."""
    if not group_ids:
        return []
    rows = session.exec(
        select(User, GroupModerator.appointed_at, GroupModerator.group_id)
        .join(GroupModerator, GroupModerator.user_id == User.id)
        .where(GroupModerator.group_id.in_(group_ids), GroupModerator.stood_down_at.is_(None))
        .order_by(User.name, User.email)
    ).all()
    return [ModeratorRow(*row) for row in rows]


@dataclass
class Appointment:
    """The outcome of appointing someone: the account, and whether it was new."""

    user: User
    new_account: bool


def _check_name(raw: str | None) -> str:
    """A moderator's name as staff typed it."""
    name = re.sub(r"\s+", " ", (raw or "").strip())
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise Invalid("The name must only include letters, spaces, hyphens and apostrophes")
    return schools.check_text(name, "moderator's name", NAME_MAX)


def appoint(session: Session, school: School, group: Group, by: User, email: str, name: str) -> Appointment:
    """Make someone a moderator of a group, creating their account (and a set-password email) if new.

    An address that belongs to staff, or to an account at another school, is refused: one
    account has one role at one school.
    """
    errors: dict[str, str] = {}
    try:
        email = valid_email(email)
    except Invalid:
        errors["email"] = "Enter an email address in the correct format, like name@example.com"
    try:
        name = _check_name(name)
    except Invalid as exc:
        errors["name"] = str(exc)
    if errors:
        raise GroupInvalid(errors)

    user = session.exec(select(User).where(User.email == email)).first()
    if user is not None:
        _check_can_moderate(user, school)
        link = session.exec(
            select(GroupModerator).where(GroupModerator.group_id == group.id, GroupModerator.user_id == user.id)
        ).first()
        if link is not None and link.stood_down_at is None:
            raise Refused(f"{user.name or user.email} is already a moderator of {group.name}.")
        if link is None:
            link = GroupModerator(group_id=group.id, user_id=user.id)
        else:
            # group_moderator is unique per (group, user): a reappointment reopens the old row.
            link.stood_down_at, link.appointed_at = None, utcnow()
        session.add(link)
        session.flush()
        if user.password_hash is None:
            # They never chose a password (the first link may have expired): send a fresh one.
            schools.send_set_password(session, user)
        else:
            mail.queue(
                session, user.email, "moderator_appointed", kind="moderator-appointed", user=user, group=group,
                school=school, link=external_url("auth.login"),
            )
        new_account = False
    else:
        user = schools.create_user(session, school, email, Role.MODERATOR, name=name, groups=[group])
        schools.send_set_password(session, user)
        new_account = True
    ledger.append(
        session, school.id, "moderator_appoint", actor=actor(by), channel="staff", group_id=group.id,
        detail={"user_id": user.id, "new_account": new_account},
    )
    return Appointment(user, new_account)


def _check_can_moderate(user: User, school: School) -> None:
    """Refuse an existing account that cannot be this school's moderator."""
    if user.school_id == school.id and user.role == Role.STAFF:
        raise GroupInvalid({"email": "This is a staff account. A moderator needs a different email address."})
    if user.school_id != school.id or user.role != Role.MODERATOR:
        # Said the same way whoever holds it, so no more is learnt about another school than that.
        raise GroupInvalid({"email": "This email address is already used by another Classgate account. "
                                     "Use a different email address."})
    if not user.active:
        raise GroupInvalid({"email": "This moderator's account has been switched off. Ask Classgate's operator."})


def stand_down(session: Session, group: Group, by: User, moderator: User) -> None:
    """End someone's moderation of a group; with no groups left they see nothing of any group."""
    link = session.exec(
        select(GroupModerator)
        .where(
            GroupModerator.group_id == group.id,
            GroupModerator.user_id == moderator.id,
            GroupModerator.stood_down_at.is_(None),
        )
        .with_for_update(key_share=True)
    ).first()
    if link is None:
        raise Refused(f"{moderator.name or moderator.email} is not a moderator of {group.name}.")
    link.stood_down_at = utcnow()
    session.add(link)
    ledger.append(
        session, group.school_id, "moderator_stand_down", actor=actor(by), channel="staff", group_id=group.id,
        detail={"user_id": moderator.id},
    )
