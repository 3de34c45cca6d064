"""Parents' own pages as domain operations: sign-in links, their groups, and a copy of their data.

A parent signs in with a link emailed to the address they joined with. Everything here is
looked up by that address, across every person record and every school that holds it, and
nothing else: another parent's memberships are simply not found. Plain functions over a
Session; the caller commits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import update
from sqlmodel import Session, select

from . import mail, policies, tokens
from .formatting import UK
from .models import (
    DOCUMENT_TITLES,
    Child,
    DocumentKind,
    Group,
    Invite,
    LedgerEntry,
    Membership,
    OutboxMessage,
    ParentSignIn,
    Person,
    PolicyVersion,
    School,
    Status,
    utcnow,
)
from .states import ENDED
from .urls import external_url
from .validation import fits_id

PURPOSE = "parent-sign-in"
AGREEMENT_ACTIONS = ("agree", "acknowledge")


class LinkUnusable(Exception):
    """A sign-in link that cannot sign anyone in; reason is invalid, used or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- Sign-in links and the signed-in session -----------------------------------------------------


def link_minutes() -> int:
    """How many minutes an emailed sign-in link works for."""
    return int(tokens.lifetime(PURPOSE).total_seconds() // 60)


def session_minutes() -> int:
    """How long a parent stays signed in after using a link."""
    return int(current_app.config["PARENT_SESSION_MINUTES"])


def known_people(session: Session, email: str) -> list[Person]:
    """Every person record under this address that has not been erased, oldest first."""
    return list(session.exec(
        select(Person).where(Person.email == email, Person.erased_at.is_(None)).order_by(Person.id)
    ).all())


def send_link(session: Session, email: str) -> bool:
    """Email a one-time sign-in link if anyone joined with this address; False (and nothing stored) if not.

    The caller answers the same either way, so the page never tells who has joined.
    """
    people = known_people(session, email)
    if not people:
        return False
    newest = people[-1]
    now = utcnow()
    nonce, nonce_hash = tokens.new_nonce()
    row = ParentSignIn(email=email, nonce_hash=nonce_hash, created_at=now, expires_at=now + tokens.lifetime(PURPOSE))
    session.add(row)
    session.flush()
    token = tokens.issue(PURPOSE, {"s": row.id, "n": nonce})
    mail.queue(
        session, email, "parent_sign_in", kind="parent-sign-in", person_id=newest.id,
        name=newest.name, link=external_url("me.sign_in", token=token), minutes=link_minutes(),
        start_link=external_url("me.index"),
    )
    return True


def _problem(row: ParentSignIn) -> str | None:
    """Why a sign-in row can no longer be used (used, expired), or None if it can."""
    if row.used_at is not None:
        return "used"
    if row.expires_at <= utcnow():
        return "expired"
    return None


def check_link(session: Session, token: str) -> ParentSignIn:
    """The sign-in row a link names, if it could still be used; uses nothing. Raises LinkUnusable."""
    try:
        payload = tokens.load(PURPOSE, token)
    except tokens.TokenExpired as exc:
        raise LinkUnusable("expired") from exc
    except tokens.TokenInvalid as exc:
        raise LinkUnusable("invalid") from exc
    sign_in_id = payload.get("s")
    row = session.get(ParentSignIn, sign_in_id) if isinstance(sign_in_id, int) else None
    if row is None or not tokens.nonce_matches(payload.get("n"), row.nonce_hash):
        raise LinkUnusable("invalid")
    reason = _problem(row)
    if reason:
        raise LinkUnusable(reason)
    return row


def use_link(session: Session, token: str) -> ParentSignIn:
    """Use a sign-in link exactly once, even when it is pressed twice at the same moment.

    The conditional UPDATE is the only thing that decides: of two requests racing, one
    changes the row and the other finds nothing to change.
    """
    row = check_link(session, token)
    now = utcnow()
    result = session.exec(
        update(ParentSignIn)
        .where(ParentSignIn.id == row.id, ParentSignIn.used_at.is_(None), ParentSignIn.expires_at > now)
        .values(used_at=now)
    )
    session.refresh(row)
    if result.rowcount != 1:
        raise LinkUnusable(_problem(row) or "used")
    return row


def session_ends(row: ParentSignIn) -> datetime:
    """When a signed-in session opened by this (used) link ends at the latest."""
    return row.used_at + timedelta(minutes=session_minutes())


def signed_in(session: Session, sign_in_id: object) -> ParentSignIn | None:
    """The sign-in behind a browser's session, while it lasts; None once signed out, expired or erased."""
    if not isinstance(sign_in_id, int):
        return None
    row = session.get(ParentSignIn, sign_in_id)
    if row is None or row.used_at is None or row.signed_out_at is not None:
        return None
    if utcnow() >= session_ends(row):
        return None
    return row


def sign_out(session: Session, row: ParentSignIn) -> None:
    """End a signed-in session for good (the row says so, whatever the browser keeps)."""
    session.exec(
        update(ParentSignIn)
        .where(ParentSignIn.id == row.id, ParentSignIn.signed_out_at.is_(None))
        .values(signed_out_at=utcnow())
    )


# --- My groups --------------------------------------------------------------------------------

# Where a membership stands, as the parent reads it.
STATUS_WORDS = {
    Status.DETAILS_GIVEN: "Email address not confirmed yet",
    Status.EMAIL_VERIFIED: "Not agreed to the code of conduct yet",
    Status.AGREED: "Agreed to the code of conduct",
    Status.PENDING_APPROVAL: "Waiting for a moderator",
    Status.APPROVED: "Approved",
    Status.INVITED: "Link to the group sent",
    Status.LINK_USED: "In the group",
    Status.REJECTED: "Request not approved",
    Status.LEFT: "You left",
    Status.REMOVED: "Membership ended by the moderators",
    Status.EXPIRED: "Ended: email address not confirmed in time",
}
ACTIVE = policies.ACTIVE


@dataclass
class Agreement:
    """One agreement or acknowledgement the parent made, as the ledger recorded it."""

    action: str
    title: str
    version: int | None
    at: datetime
    statement: str
    again: bool

    @property
    def verb(self) -> str:
        """What the parent did, as the list says it: 'You agreed' or 'You confirmed you had read it'."""
        return "You agreed" if self.action == "agree" else "You confirmed you had read it"


@dataclass
class MyGroup:
    """One of the parent's memberships, with what they agreed to and what is waiting for them."""

    membership: Membership
    person: Person
    group: Group
    school: School
    child_name: str
    agreements: list[Agreement] = field(default_factory=list)
    open_invite: Invite | None = None

    @property
    def status_words(self) -> str:
        """Where the membership stands, in plain words."""
        return STATUS_WORDS.get(Status(self.membership.status), self.membership.status)

    @property
    def ended(self) -> bool:
        """True once the membership is over (left, removed, not approved, never confirmed)."""
        return Status(self.membership.status) in ENDED

    @property
    def must_reagree(self) -> bool:
        """True when a material change to the documents is waiting for their agreement."""
        return bool(self.membership.needs_reagree) and Status(self.membership.status) in ACTIVE

    @property
    def invite_expired(self) -> bool:
        """True when the open link to the group has run out without being used."""
        return self.open_invite is not None and self.open_invite.expires_at <= utcnow()


def _child_name(membership: Membership, display_name: str | None) -> str:
    """The child's name from the class list, or the name a parent without a code typed."""
    return display_name or membership.claimed_child_name or ""


def my_groups(session: Session, email: str) -> list[MyGroup]:
    """Every membership under this address, across schools, in three statements however many there are.

    Live memberships come first, then ended ones; each group by school and group name.
    """
    rows = session.exec(
        select(Membership, Person, Group, School, Child.display_name)
        .join(Person, Person.id == Membership.person_id)
        .join(Group, Group.id == Membership.group_id)
        .join(School, School.id == Group.school_id)
        .outerjoin(Child, Child.id == Membership.child_id)
        .where(Person.email == email, Person.erased_at.is_(None))
        .order_by(School.name, Group.name, Membership.created_at, Membership.id)
    ).all()
    groups = [MyGroup(m, p, g, s, _child_name(m, child)) for m, p, g, s, child in rows]
    if not groups:
        return []
    by_id = {item.membership.id: item for item in groups}
    refs = sorted({item.person.ref for item in groups})
    for entry in session.exec(
        select(LedgerEntry)
        .where(
            LedgerEntry.person_ref.in_(refs),
            LedgerEntry.action.in_(AGREEMENT_ACTIONS),
            LedgerEntry.membership_id.in_(list(by_id)),
        )
        .order_by(LedgerEntry.created_at, LedgerEntry.id)
    ).all():
        by_id[entry.membership_id].agreements.append(_agreement(entry))
    for invite in session.exec(
        select(Invite)
        .where(Invite.membership_id.in_(list(by_id)), Invite.used_at.is_(None), Invite.revoked_at.is_(None))
        .order_by(Invite.issued_at, Invite.id)
    ).all():
        by_id[invite.membership_id].open_invite = invite
    return sorted(groups, key=lambda item: item.ended)  # stable: keeps the name order within each


def _agreement(entry: LedgerEntry) -> Agreement:
    """An agree or acknowledge entry as the groups page shows it."""
    detail = json.loads(entry.detail or "{}")
    return Agreement(
        action=entry.action,
        title=_title(entry.document_kind),
        version=entry.document_version,
        at=entry.created_at,
        statement=entry.statement or "",
        again=bool(detail.get("again")),
    )


def _title(kind: str | None) -> str:
    """A document kind's name as people know it."""
    try:
        return DOCUMENT_TITLES[DocumentKind(kind)]
    except ValueError:
        return kind or ""


@dataclass
class Owned:
    """A membership the signed-in parent may act on, with its group and school."""

    membership: Membership
    group: Group
    school: School


def owned_membership(session: Session, email: str, membership_id: int) -> Owned | None:
    """The membership if it belongs to a person under this address; None for anyone else's."""
    if not fits_id(membership_id):
        return None
    row = session.exec(
        select(Membership, Group, School)
        .join(Person, Person.id == Membership.person_id)
        .join(Group, Group.id == Membership.group_id)
        .join(School, School.id == Group.school_id)
        .where(Membership.id == membership_id, Person.email == email, Person.erased_at.is_(None))
    ).first()
    return Owned(*row) if row else None


def changed_documents(session: Session, membership: Membership) -> list[PolicyVersion]:
    """The current documents that differ from the versions this member last agreed to."""
    group = session.get(Group, membership.group_id)
    coc = policies.current(session, group.school_id, DocumentKind.CODE_OF_CONDUCT)
    notice = policies.current(session, group.school_id, DocumentKind.DATA_NOTICE)
    return [v for v, agreed in ((coc, membership.coc_version_id), (notice, membership.notice_version_id))
            if v.id != agreed]


# --- A copy of their data ----------------------------------------------------------------------


def iso(moment: datetime | None) -> str | None:
    """A timestamp as an ISO 8601 UTC string (2026-01-10T14:05:00.123456Z), or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def export_filename(now: datetime) -> str:
    """classgate-my-data-2026-01-10.json, dated as the parent's calendar has it."""
    return f"classgate-my-data-{now.astimezone(UK):%Y-%m-%d}.json"


def export(session: Session, email: str, now: datetime | None = None) -> dict:
    """Everything Classgate holds about the people under this address, ready for json.dumps.

    Seven statements whatever the number of memberships. Secrets (hashes of link nonces) are
    left out, as are moderators' private notes about a removal.
    """
    now = now or utcnow()
    people = known_people(session, email)
    person_ids = [p.id for p in people]
    refs = [p.ref for p in people]
    rows = session.exec(
        select(Membership, Group, School, Child.display_name, Person.ref)
        .join(Person, Person.id == Membership.person_id)
        .join(Group, Group.id == Membership.group_id)
        .join(School, School.id == Group.school_id)
        .outerjoin(Child, Child.id == Membership.child_id)
        .where(Membership.person_id.in_(person_ids))
        .order_by(Membership.id)
    ).all() if person_ids else []
    membership_ids = [m.id for m, *_ in rows]
    schools = {s.id: s for _, _, s, _, _ in rows}
    groups = {g.id: g for _, g, _, _, _ in rows}
    entries = session.exec(
        select(LedgerEntry).where(LedgerEntry.person_ref.in_(refs)).order_by(LedgerEntry.school_id, LedgerEntry.seq)
    ).all() if refs else []
    version_ids = sorted({e.document_version_id for e in entries if e.document_version_id})
    versions = session.exec(
        select(PolicyVersion).where(PolicyVersion.id.in_(version_ids)).order_by(PolicyVersion.id)
    ).all() if version_ids else []
    invites = session.exec(
        select(Invite).where(Invite.membership_id.in_(membership_ids)).order_by(Invite.id)
    ).all() if membership_ids else []
    emails = session.exec(
        select(OutboxMessage).where(OutboxMessage.person_id.in_(person_ids)).order_by(OutboxMessage.id)
    ).all() if person_ids else []
    sign_ins = session.exec(
        select(ParentSignIn).where(ParentSignIn.email == email).order_by(ParentSignIn.id)
    ).all()
    return {
        "about": (
            "Everything Classgate holds about you under this email address, as of exported_at. "
            "Times are in UTC. The agreement log (ledger) names you only by your reference number."
        ),
        "exported_at": iso(now),
        "email": email,
        "people": [
            {"ref": p.ref, "name": p.name, "email": p.email, "mobile": p.mobile, "created_at": iso(p.created_at)}
            for p in people
        ],
        "memberships": [_membership_data(m, g, s, child, ref) for m, g, s, child, ref in rows],
        "ledger": [_entry_data(e, schools, groups) for e in entries],
        "documents_agreed": [
            {
                "school": schools[v.school_id].name if v.school_id in schools else None,
                "kind": v.kind, "title": v.title, "version": v.number, "sha256": v.sha256,
                "published_at": iso(v.published_at), "text": v.text,
            }
            for v in versions
        ],
        "invites": [
            {
                "membership_id": i.membership_id, "issued_at": iso(i.issued_at), "expires_at": iso(i.expires_at),
                "used_at": iso(i.used_at), "revoked_at": iso(i.revoked_at),
            }
            for i in invites
        ],
        "emails": [
            {
                "created_at": iso(o.created_at), "sent_at": iso(o.sent_at), "to": o.to_addr, "subject": o.subject,
                "body": o.body_text,
            }
            for o in emails
        ],
        "sign_ins": [
            {
                "created_at": iso(s.created_at), "expires_at": iso(s.expires_at), "used_at": iso(s.used_at),
                "signed_out_at": iso(s.signed_out_at),
            }
            for s in sign_ins
        ],
    }


def _membership_data(m: Membership, group: Group, school: School, child: str | None, ref: str) -> dict:
    """One membership in the data file (never the moderators' private note about a removal)."""
    return {
        "id": m.id,
        "person_ref": ref,
        "school": school.name,
        "group": group.name,
        "academic_year": group.academic_year,
        "child": _child_name(m, child),
        "relationship": m.relationship,
        "status": m.status,
        "status_in_words": STATUS_WORDS.get(Status(m.status), m.status),
        "verified_by": m.verified_by,
        "needs_to_agree_again": bool(m.needs_reagree),
        "created_at": iso(m.created_at),
        "email_confirmed_at": iso(m.email_verified_at),
        "agreed_at": iso(m.agreed_at),
        "approved_at": iso(m.approved_at),
        "ended_at": iso(m.ended_at),
        "end_reason": m.end_reason,
    }


def _entry_data(e: LedgerEntry, schools: dict[int, School], groups: dict[int, Group]) -> dict:
    """One ledger entry about them in the data file: what, when, which document and its hash."""
    return {
        "school": schools[e.school_id].name if e.school_id in schools else None,
        "seq": e.seq,
        "action": e.action,
        "created_at": iso(e.created_at),
        "person_ref": e.person_ref,
        "group": groups[e.group_id].name if e.group_id in groups else None,
        "membership_id": e.membership_id,
        "document_kind": e.document_kind,
        "document_version": e.document_version,
        "document_sha256": e.document_sha256,
        "statement": e.statement,
        "channel": e.channel,
        "entry_hash": e.entry_hash,
    }
