"""The school's incident log: the actions it took about a member, when, and who decided.

Plain functions over a Session; the caller has loaded the membership through
membership.staff.membership_in (so it is this school's) and commits. Bad input raises
IncidentInvalid (every field's message at once) before anything is written.

Each incident is also an entry in the school's ledger, but the ledger can never be changed or
erased, so it keeps only the action, the date and SHA-256 digests of the free text: what was
decided about someone, and by whom, stays in the incident log where it can be erased.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, select

from . import ledger
from .concerns import ascii_number, check_text, reference
from .models import (
    Concern,
    Group,
    Incident,
    IncidentAction,
    Membership,
    Person,
    School,
    User,
    incident_label,
)
from .moderation import ACTIVE
from .moderation import members as moderation_members
from .validation import Invalid

DECIDED_BY_MAX = 120  # Incident.decided_by
NOTE_MAX = 2000  # Incident.note
OLDEST_YEARS = 10  # a date further back than this is a typing mistake
# What the membership's own removal note says when the school removes someone: the incident's note
# is for staff only, and the removal note is read by the group's moderators.
REMOVAL_NOTE = "Removed by the school, which keeps the details in its own records."


class IncidentInvalid(Invalid):
    """A form with mistakes: errors maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass
class IncidentDetails:
    """What a member of staff typed, before checking."""

    action: str = ""
    day: str = ""
    month: str = ""
    year: str = ""
    decided_by: str = ""
    note: str = ""
    concern: str = ""


@dataclass
class Recorded:
    """An incident just written, and whether it also removed the member from the group."""

    incident: Incident
    removed: bool


def sha256(text: str | None) -> str | None:
    """The SHA-256 of a free text, as the ledger keeps it; None for no text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text else None


def check_date(day: str, month: str, year: str, today: date) -> date:
    """A real date, not in the future and not absurdly long ago."""
    parts = [(part or "").strip() for part in (day, month, year)]
    if not any(parts):
        raise Invalid("Enter the date it happened")
    names = ("a day", "a month", "a year")
    missing = [name for name, part in zip(names, parts, strict=True) if not part]
    if missing:
        raise Invalid(f"The date must include {' and '.join(missing)}")
    if not all(ascii_number(part) and len(part) <= 4 for part in parts) or len(parts[2]) != 4:
        raise Invalid("Enter the date as numbers, like 27 3 2026")
    try:
        when = date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError as exc:
        raise Invalid("The date must be a real date") from exc
    if when > today:
        raise Invalid("The date must be today or in the past")
    if when.year < today.year - OLDEST_YEARS:
        raise Invalid(f"The date must be within the last {OLDEST_YEARS} years")
    return when


def check_decided_by(raw: str | None) -> str:
    """Who decided: a name or role, one line, 1–120 printable characters."""
    if not (raw or "").strip():
        raise Invalid("Enter who decided, like the headteacher’s name")
    # Checked before spaces are tidied, since some control characters count as spaces.
    check_text(raw, what="who decided", limit=DECIDED_BY_MAX, required=True)
    return " ".join(raw.split())


def _check_action(raw: str | None) -> str:
    """One of the actions the policies name."""
    if raw not in {action.value for action in IncidentAction}:
        raise Invalid("Select what the school did")
    return raw


def _check_concern(session: Session, school: School, raw: str | None) -> int | None:
    """The id of one of this school's concerns, or None when none was chosen."""
    value = (raw or "").strip()
    if not value:
        return None
    concern = session.get(Concern, int(value)) if ascii_number(value) else None
    if concern is None or concern.school_id != school.id:
        raise Invalid("Select a concern from the list, or ‘Not linked to a concern’")
    return concern.id


def check(session: Session, school: School, details: IncidentDetails, today: date) -> dict:
    """The details in normal form, or IncidentInvalid naming every field that is wrong."""
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    checks = {
        "action": lambda: _check_action(details.action),
        "day": lambda: check_date(details.day, details.month, details.year, today),
        "decided_by": lambda: check_decided_by(details.decided_by),
        "note": lambda: check_text(details.note, what="the note", limit=NOTE_MAX, required=False),
        "concern": lambda: _check_concern(session, school, details.concern),
    }
    for field, run in checks.items():
        try:
            values[field] = run()
        except Invalid as exc:
            errors[field] = str(exc)
    if errors:
        raise IncidentInvalid(errors)
    return values


def record(
    session: Session, school: School, membership: Membership, staff_user: User, details: IncidentDetails, today: date
) -> Recorded:
    """Write an incident and its ledger entry; for 'removed from the group', remove a current member too.

    Removal goes through the moderators' own removal, so it ends the membership, cancels links,
    blocks rejoining, emails the parent neutrally and asks the moderators to take them out of the chat.
    """
    values = check(session, school, details, today)
    group = session.get(Group, membership.group_id)
    person = session.get(Person, membership.person_id)
    incident = Incident(
        school_id=school.id, membership_id=membership.id, concern_id=values["concern"], action=values["action"],
        occurred_on=values["day"], decided_by=values["decided_by"], note=values["note"],
        recorded_by_user_id=staff_user.id,
    )
    session.add(incident)
    session.flush()
    ledger.append(
        session, school.id, "incident", actor=f"user:{staff_user.id}", channel="staff", person_ref=person.ref,
        group_id=group.id, child_id=membership.child_id, membership_id=membership.id,
        detail={
            "incident_id": incident.id,
            "action": incident.action,
            "occurred_on": incident.occurred_on.isoformat(),
            "note_sha256": sha256(incident.note),
            "decided_by_sha256": sha256(incident.decided_by),
        },
    )
    removed = False
    if incident.action == IncidentAction.REMOVED_FROM_GROUP and membership.status in ACTIVE:
        try:
            moderation_members.remove(
                session, membership, staff_user, moderation_members.SCHOOL_DECISION, REMOVAL_NOTE
            )
        except moderation_members.Refused:
            # Someone else ended the membership a moment ago: the incident stands on its own.
            removed = False
        else:
            removed = True
    return Recorded(incident, removed)


@dataclass
class IncidentRow:
    """One incident as the person's record lists it."""

    incident: Incident
    recorded_by: str

    @property
    def label(self) -> str:
        """The action in words."""
        return incident_label(self.incident.action)

    @property
    def concern_ref(self) -> str | None:
        """The reference of the concern it relates to, if any."""
        return reference(self.incident.concern_id) if self.incident.concern_id else None


def incident_log(session: Session, school: School, membership: Membership) -> list[IncidentRow]:
    """A membership's incidents, most recent first, with who recorded each, in one statement."""
    rows = session.exec(
        select(Incident, User)
        .outerjoin(User, User.id == Incident.recorded_by_user_id)
        .where(Incident.school_id == school.id, Incident.membership_id == membership.id)
        .order_by(Incident.occurred_on.desc(), Incident.id.desc())
    ).all()
    return [IncidentRow(item, (user.name or user.email) if user else "A member of staff") for item, user in rows]


def default_decided_by(user: User) -> str:
    """What 'who decided' starts as: the signed-in member of staff."""
    return (user.name or user.email)[:DECIDED_BY_MAX]
