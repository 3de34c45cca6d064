"""Concerns raised with a school about its class groups, and the staff inbox that reads them.

Plain functions over a Session; the caller commits. A concern is for the school's senior staff
only: it is never shown to moderators, never copied into an email and never written to the
ledger. Emails about it carry its reference and a link to the staff console, nothing else.
Bad input raises ConcernInvalid (every field's message at once) before anything is written.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlmodel import Session, select

from . import mail, validation
from .formatting import UK
from .models import (
    CONCERN_STATUS_LABELS,
    Concern,
    ConcernStatus,
    ConcernUpdate,
    Group,
    Incident,
    Membership,
    Person,
    Role,
    School,
    User,
    incident_label,
    utcnow,
)
from .urls import external_url
from .validation import Invalid

TEXT_MAX = 5000
NOTE_MAX = 2000  # ConcernUpdate.note
URL_MAX = 500  # School.complaints_url
PAGE_SIZE = 50
FIRST_LINE_MAX = 120
# The group select's two answers that are not a group.
NOT_ONE_GROUP = "none"
NOT_SURE = "unsure"
NO_GROUP_LABEL = "Not about one group, or not sure which"
# The inbox's filters (query parameter `status`): every status, or all of them.
FILTERS = {"all": "All", **{status.value: label for status, label in CONCERN_STATUS_LABELS.items()}}


class ConcernInvalid(Invalid):
    """A form with mistakes: errors maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def reference(concern_id: int) -> str:
    """How a concern is quoted by the school and the person who raised it: C-000042."""
    return f"C-{concern_id:06d}"


def status_label(status: str) -> str:
    """A status as staff read it."""
    try:
        return CONCERN_STATUS_LABELS[ConcernStatus(status)]
    except ValueError:
        return status


def check_text(raw: str | None, *, what: str, limit: int, required: bool) -> str:
    """Free text typed into a textarea: line ends made Unix, trimmed, printable and within the limit."""
    # Browsers send textareas back with CRLF line ends: count a line break as one character.
    text = (raw or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if required and not text:
        raise Invalid(f"Enter {what}")
    if validation.has_control(text, line_breaks=True):
        raise Invalid(f"{what[0].upper()}{what[1:]} must only include ordinary letters, numbers and punctuation")
    if len(text) > limit:
        raise Invalid(f"{what[0].upper()}{what[1:]} must be {limit:,} characters or fewer")
    return text


# --- Raising a concern (public) -----------------------------------------------------------------


@dataclass
class ConcernDetails:
    """What someone typed on the public form, before checking."""

    group: str = ""
    what_happened: str = ""
    contact_name: str = ""
    contact_email: str = ""
    contact_phone: str = ""


def school_groups(session: Session, school: School) -> list[Group]:
    """The school's groups, by name, for the form's select."""
    return list(session.exec(select(Group).where(Group.school_id == school.id).order_by(Group.name)).all())


def ascii_number(value: str) -> bool:
    """True for a short run of ASCII digits: an id or a date part, never ² or a full-width digit."""
    return value.isascii() and value.isdigit() and len(value) < 10


def _check_group(session: Session, school: School, value: str) -> int | None:
    """The chosen group's id (None for 'not about one group' or 'not sure'); another school's is refused."""
    value = (value or "").strip()
    if value in (NOT_ONE_GROUP, NOT_SURE):
        return None
    if not value:
        raise Invalid("Select the group it is about, or ‘I’m not sure’")
    group = session.get(Group, int(value)) if ascii_number(value) else None
    if group is None or group.school_id != school.id:
        raise Invalid("Select a group from the list")
    return group.id


def _optional(check, raw: str | None):
    """Run a check only when something was typed."""
    return check(raw) if (raw or "").strip() else None


def raise_concern(session: Session, school: School, details: ConcernDetails) -> Concern:
    """Store a concern and tell the school it has arrived; acknowledge it to the sender if they gave an email.

    The school is told only that a concern is waiting, with a link: neither what happened nor who
    sent it goes into an email, where it could be forwarded or read over a shoulder.
    """
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    checks = {
        "group": lambda: _check_group(session, school, details.group),
        "what_happened": lambda: check_text(
            details.what_happened, what="what happened", limit=TEXT_MAX, required=True,
        ),
        "contact_name": lambda: _optional(validation.person_name, details.contact_name),
        "contact_email": lambda: _optional(validation.email, details.contact_email),
        "contact_phone": lambda: validation.mobile(details.contact_phone),
    }
    for field, check in checks.items():
        try:
            values[field] = check()
        except Invalid as exc:
            errors[field] = str(exc)
    if errors:
        raise ConcernInvalid(errors)
    concern = Concern(
        school_id=school.id, group_id=values["group"], what_happened=values["what_happened"],
        contact_name=values["contact_name"], contact_email=values["contact_email"],
        contact_phone=values["contact_phone"],
    )
    session.add(concern)
    session.flush()
    ref = reference(concern.id)
    link = external_url("school.show_concern", concern_id=concern.id)
    for address in recipients(session, school):
        mail.queue(session, address, "concern_received", kind="concern-received", school=school, ref=ref, link=link)
    if concern.contact_email:
        mail.queue(
            session, concern.contact_email, "concern_acknowledgement", kind="concern-acknowledgement",
            school=school, ref=ref, name=concern.contact_name,
        )
    return concern


def recipients(session: Session, school: School) -> list[str]:
    """The school's concerns address and every active staff account, each address once."""
    staff = session.exec(
        select(User.email).where(User.school_id == school.id, User.role == Role.STAFF, User.active.is_(True))
        .order_by(User.id)
    ).all()
    seen: dict[str, str] = {}
    for address in [school.concerns_email, *staff]:
        if address:
            seen.setdefault(address.strip().lower(), address.strip())
    return list(seen.values())


# --- The staff inbox ------------------------------------------------------------------------------


@dataclass
class InboxRow:
    """One concern as the inbox lists it."""

    id: int
    created_at: datetime
    status: str
    group_name: str | None
    opening: str

    @property
    def ref(self) -> str:
        """The concern's reference."""
        return reference(self.id)

    @property
    def status_label(self) -> str:
        """Its status in words."""
        return status_label(self.status)

    @property
    def first_line(self) -> str:
        """The first line of what happened, shortened to fit a row."""
        line = self.opening.strip().split("\n", 1)[0].strip()
        return line if len(line) <= FIRST_LINE_MAX else line[: FIRST_LINE_MAX - 1].rstrip() + "…"


@dataclass
class InboxPage:
    """One page of the inbox, with the number of concerns in each status."""

    rows: list[InboxRow]
    counts: dict[str, int]
    status: str
    page: int
    pages: int

    @property
    def total(self) -> int:
        """How many concerns the current filter matches."""
        return self.counts[self.status]

    @property
    def has_previous(self) -> bool:
        """True after the first page."""
        return self.page > 1

    @property
    def has_next(self) -> bool:
        """True before the last page."""
        return self.page < self.pages


def status_counts(session: Session, school: School) -> dict[str, int]:
    """How many of the school's concerns are in each status, and in all, in one statement."""
    counts = {key: 0 for key in FILTERS}
    rows = session.exec(
        select(Concern.status, func.count()).where(Concern.school_id == school.id).group_by(Concern.status)
    ).all()
    for status, number in rows:
        counts[status] = counts.get(status, 0) + number
        counts["all"] += number
    return counts


def new_count(session: Session, school: School) -> int:
    """How many concerns nobody has picked up yet."""
    return session.exec(
        select(func.count()).select_from(Concern)
        .where(Concern.school_id == school.id, Concern.status == ConcernStatus.NEW)
    ).one()


def inbox_page(session: Session, school: School, *, status: str = "all", page: int = 1) -> InboxPage:
    """Newest first, filtered by status, fifty to a page, in two statements whatever the number."""
    status = status if status in FILTERS else "all"
    counts = status_counts(session, school)
    pages = max(1, -(-counts[status] // PAGE_SIZE))
    page = min(max(1, page), pages)
    query = (
        select(
            Concern.id, Concern.created_at, Concern.status, Group.name,
            # Only the start of each text is read: the list shows its first line.
            func.substr(Concern.what_happened, 1, FIRST_LINE_MAX * 2),
        )
        .outerjoin(Group, Group.id == Concern.group_id)
        .where(Concern.school_id == school.id)
        .order_by(Concern.created_at.desc(), Concern.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )
    if status != "all":
        query = query.where(Concern.status == status)
    rows = [InboxRow(*row) for row in session.exec(query).all()]
    return InboxPage(rows, counts, status, page, pages)


@dataclass
class HistoryItem:
    """A status change or a note, as the concern's history shows it."""

    update: ConcernUpdate
    by: str
    changed_from: str | None  # the status before, when this update changed it

    @property
    def status_label(self) -> str:
        """The status it was set to."""
        return status_label(self.update.status)


@dataclass
class ActionTaken:
    """An entry in a member's incident log that names this concern."""

    incident: Incident
    name: str

    @property
    def label(self) -> str:
        """The action in words."""
        return incident_label(self.incident.action)


@dataclass
class ConcernView:
    """A concern with its group, its history (oldest first) and the actions recorded against it."""

    concern: Concern
    group: Group | None
    history: list[HistoryItem]
    actions: list[ActionTaken]

    @property
    def ref(self) -> str:
        """The concern's reference."""
        return reference(self.concern.id)

    @property
    def status_label(self) -> str:
        """Its status in words."""
        return status_label(self.concern.status)

    @property
    def has_contact(self) -> bool:
        """True when the sender left any way to reach them."""
        c = self.concern
        return bool(c.contact_name or c.contact_email or c.contact_phone)


def view(session: Session, concern: Concern) -> ConcernView:
    """A concern the caller has loaded for this school: its group, who changed what, and the actions taken."""
    group = session.get(Group, concern.group_id) if concern.group_id else None
    rows = session.exec(
        select(ConcernUpdate, User)
        .outerjoin(User, User.id == ConcernUpdate.user_id)
        .where(ConcernUpdate.concern_id == concern.id)
        .order_by(ConcernUpdate.created_at, ConcernUpdate.id)
    ).all()
    history, previous = [], ConcernStatus.NEW.value
    for update, user in rows:
        by = (user.name or user.email) if user else "A member of staff"
        history.append(HistoryItem(update, by, previous if update.status != previous else None))
        previous = update.status
    actions = session.exec(
        select(Incident, Person.name)
        .join(Membership, Membership.id == Incident.membership_id)
        .join(Person, Person.id == Membership.person_id)
        .where(Incident.concern_id == concern.id, Incident.school_id == concern.school_id)
        .order_by(Incident.occurred_on, Incident.id)
    ).all()
    return ConcernView(concern, group, history, [ActionTaken(i, name or "Details erased") for i, name in actions])


def change_status(session: Session, concern: Concern, user: User, status: str, note: str | None) -> ConcernUpdate:
    """Move a concern to a status, with an optional note; closing stamps closed_at, reopening clears it.

    Keeping the same status is allowed when there is a note to add; with neither, nothing is written.
    """
    errors: dict[str, str] = {}
    try:
        new_status = ConcernStatus(status or "")
    except ValueError:
        errors["status"] = "Select where the concern stands"
        new_status = None
    try:
        text = check_text(note, what="the note", limit=NOTE_MAX, required=False)
    except Invalid as exc:
        errors["note"] = str(exc)
        text = ""
    if not errors and new_status == concern.status and not text:
        errors["note"] = "Choose a different status, or add a note"
    if errors:
        raise ConcernInvalid(errors)
    now = utcnow()
    if new_status != concern.status:
        concern.closed_at = now if new_status == ConcernStatus.CLOSED else None
        concern.status = new_status.value
    concern.updated_at = now
    session.add(concern)
    update = ConcernUpdate(concern_id=concern.id, user_id=user.id, status=new_status.value, note=text, created_at=now)
    session.add(update)
    session.flush()
    return update


def _day(moment: datetime) -> str:
    """A UTC timestamp's UK calendar day: 3 Mar 2026."""
    local = moment.astimezone(UK)
    return f"{local.day} {local:%b %Y}"


def concern_choices(session: Session, school: School, limit: int = 200) -> list[tuple[int, str]]:
    """The school's most recent concerns as (id, label) for linking an incident to one."""
    rows = session.exec(
        select(Concern.id, Concern.created_at, Concern.status, Group.name)
        .outerjoin(Group, Group.id == Concern.group_id)
        .where(Concern.school_id == school.id)
        .order_by(Concern.created_at.desc(), Concern.id.desc())
        .limit(limit)
    ).all()
    return [
        (cid, f"{reference(cid)}, received {_day(created)}, {group or 'no group given'} ({status_label(s).lower()})")
        for cid, created, s, group in rows
    ]


# --- The school's contact settings ------------------------------------------------------------------


def check_complaints_url(raw: str | None) -> str | None:
    """An https link to the school's complaints procedure, or None when left blank."""
    url = (raw or "").strip()
    if not url:
        return None
    message = "Enter a link that starts with https://, like https://www.example.sch.uk/complaints"
    if len(url) > URL_MAX:
        raise Invalid(f"The link must be {URL_MAX} characters or fewer")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in url):
        raise Invalid("The link must not contain spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise Invalid(message) from exc
    # A userinfo part (https://school.example@elsewhere.example) hides the real host from people.
    if parts.scheme.lower() != "https" or not parts.hostname or "." not in parts.hostname or "@" in parts.netloc:
        raise Invalid(message)
    return url


def update_settings(session: Session, school: School, concerns_email: str | None, complaints_url: str | None) -> bool:
    """Set where concerns are emailed and the complaints procedure's link; False when nothing changed."""
    errors: dict[str, str] = {}
    email = url = None
    try:
        email = validation.email(concerns_email)
    except Invalid as exc:
        errors["concerns_email"] = str(exc).replace("Enter your email address", "Enter the school’s email address")
    try:
        url = check_complaints_url(complaints_url)
    except Invalid as exc:
        errors["complaints_url"] = str(exc)
    if errors:
        raise ConcernInvalid(errors)
    if (email, url) == (school.concerns_email, school.complaints_url):
        return False
    school.concerns_email, school.complaints_url = email, url
    session.add(school)
    session.flush()
    return True
