"""Class lists for staff: import, each child's code, personal invitations and carer blocks.

Plain functions over a Session; the caller has already loaded the child through
membership.staff.child_in (so it is this school's) and commits.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, select

from .. import codes, ledger, letters, roster, schools
from ..concerns import ascii_number
from ..models import (
    CarerBlock,
    CarerInvitation,
    Child,
    EnrolmentCode,
    Group,
    Membership,
    Person,
    School,
    User,
    utcnow,
)
from ..states import ENDED
from ..validation import Invalid, has_control
from ..validation import email as valid_email

MIN_USES, MAX_USES = 1, 10
DEFAULT_USES = 2  # EnrolmentCode's default: two carers per child
MAX_INVITES_AT_ONCE = 4
REASON_MAX = 200
_EMAIL_SPLIT = re.compile(r"[;,\s]+")


class BadFile(Exception):
    """A roster file that cannot be imported; errors are (line, message) pairs."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


class BadInput(Invalid):
    """A form value the school must correct; field names the form field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def email_digest(email: str) -> str:
    """How the ledger refers to an email address: SHA-256 of its lower-cased form, never the address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _ledger(session: Session, group: Group, child: Child, action: str, user: User, detail: dict) -> None:
    ledger.append(
        session, group.school_id, action, actor=f"user:{user.id}", channel="staff",
        group_id=group.id, child_id=child.id, detail=detail,
    )


# --- The class lists -----------------------------------------------------------------------------


@dataclass
class ChildRow:
    """A child on the class list with the state of their current code."""

    child: Child
    code: EnrolmentCode | None  # None: the last code was cancelled and no new one made
    blocks: int = 0


@dataclass
class GroupList:
    """One group's children."""

    group: Group
    children: list[ChildRow] = field(default_factory=list)


def class_lists(session: Session, school: School) -> list[GroupList]:
    """Every group of the school with its children and their current codes, in two queries."""
    groups = session.exec(select(Group).where(Group.school_id == school.id).order_by(Group.name)).all()
    lists = {g.id: GroupList(g) for g in groups}
    rows = session.exec(
        select(Child, EnrolmentCode)
        .join(Group, Group.id == Child.group_id)
        .outerjoin(EnrolmentCode, (EnrolmentCode.child_id == Child.id) & EnrolmentCode.revoked_at.is_(None))
        .where(Group.school_id == school.id)
        .order_by(Child.display_name, Child.id)
    ).all()
    blocks = dict(session.exec(
        select(CarerBlock.child_id, func.count())
        .join(Child, Child.id == CarerBlock.child_id)
        .join(Group, Group.id == Child.group_id)
        .where(Group.school_id == school.id, CarerBlock.lifted_at.is_(None))
        .group_by(CarerBlock.child_id)
    ).all())
    for child, code in rows:
        lists[child.group_id].children.append(ChildRow(child, code, blocks.get(child.id, 0)))
    return list(lists.values())


@dataclass
class Imported:
    """A file imported: its codes (to show once) and how many invitations were sent."""

    issued: list[letters.Issued]
    invitations: int


def import_file(session: Session, school: School, data: bytes) -> Imported:
    """Check the whole file and import all of it, or raise BadFile naming every bad line."""
    try:
        report = roster.parse(session, data, school.id)
    except UnicodeDecodeError as exc:
        raise BadFile([(1, "The file is not UTF-8 text: in Excel, save it as ‘CSV UTF-8’")]) from exc
    if not report.ok:
        raise BadFile(report.errors)
    added = roster.apply(session, report)
    issued = [
        letters.Issued(new.child, row.group, new.code, DEFAULT_USES)
        for row, new in zip(report.rows, added, strict=True)
    ]
    return Imported(issued, sum(len(row.carer_emails) for row in report.rows))


# --- One child -------------------------------------------------------------------------------------


@dataclass
class InvitationRow:
    """A personal invitation and where it stands."""

    invitation: CarerInvitation
    state: str  # open, used, expired, cancelled


@dataclass
class CarerRow:
    """Someone who joined, or started to, through this child."""

    name: str
    relationship: str
    status: str


@dataclass
class ChildPage:
    """Everything the child's page shows."""

    child: Child
    group: Group
    code: EnrolmentCode | None
    earlier_codes: int
    invitations: list[InvitationRow]
    blocks: list[CarerBlock]
    carers: list[CarerRow]


def _invitation_state(invitation: CarerInvitation, now: datetime) -> str:
    if invitation.used_at is not None:
        return "used"
    if invitation.revoked_at is not None:
        return "cancelled"
    if invitation.expires_at <= now:
        return "expired"
    return "open"


def current_code(session: Session, child: Child) -> EnrolmentCode | None:
    """The child's code that works today, if any."""
    return session.exec(
        select(EnrolmentCode).where(EnrolmentCode.child_id == child.id, EnrolmentCode.revoked_at.is_(None))
    ).first()


def child_page(session: Session, child: Child, group: Group) -> ChildPage:
    """The child's code, invitations, blocks and carers."""
    code = current_code(session, child)
    earlier = session.exec(
        select(func.count()).select_from(EnrolmentCode)
        .where(EnrolmentCode.child_id == child.id, EnrolmentCode.revoked_at.is_not(None))
    ).one()
    now = utcnow()
    invitations = [
        InvitationRow(i, _invitation_state(i, now))
        for i in session.exec(
            select(CarerInvitation).where(CarerInvitation.child_id == child.id)
            .order_by(CarerInvitation.created_at.desc(), CarerInvitation.id.desc())
        ).all()
    ]
    blocks = session.exec(
        select(CarerBlock).where(CarerBlock.child_id == child.id)
        .order_by(CarerBlock.lifted_at.is_not(None), CarerBlock.created_at.desc())
    ).all()
    carers = [
        CarerRow(person.name or "Details erased", membership.relationship, membership.status)
        for membership, person in session.exec(
            select(Membership, Person).join(Person, Person.id == Membership.person_id)
            .where(Membership.child_id == child.id).order_by(Membership.created_at)
        ).all()
    ]
    return ChildPage(child, group, code, earlier, invitations, list(blocks), carers)


def regenerate_code(session: Session, child: Child, group: Group, user: User) -> letters.Issued:
    """Cancel the child's code at once and make a new one with the same number of uses; return it to show once."""
    old = current_code(session, child)
    uses_allowed = old.uses_allowed if old else DEFAULT_USES
    plain = codes.issue_code(session, child, uses_allowed)
    new = current_code(session, child)
    _ledger(session, group, child, "code_regenerate", user,
            {"code_id": new.id, "replaced_code_id": old.id if old else None, "uses_allowed": uses_allowed})
    return letters.Issued(child, group, plain, uses_allowed)


def _uses(raw: object) -> int:
    try:
        uses = int(str(raw).strip())
    except (TypeError, ValueError) as exc:
        raise BadInput("uses", f"Enter a whole number from {MIN_USES} to {MAX_USES}") from exc
    if not MIN_USES <= uses <= MAX_USES:
        raise BadInput("uses", f"Enter a whole number from {MIN_USES} to {MAX_USES}")
    return uses


def set_uses(session: Session, child: Child, group: Group, user: User, raw: object) -> tuple[int, int]:
    """Change how many carers the child's code lets in (1–10, never fewer than have used it); return (from, to)."""
    uses = _uses(raw)
    code = current_code(session, child)
    if code is None:
        raise BadInput("uses", "This child has no working code: make a new code first")
    codes.release_stale(session, code.id)  # uses held by starts that ran out of time do not count
    before = code.uses_allowed
    # Conditional, so a carer taking a use at this moment cannot leave more uses taken than allowed.
    result = session.exec(
        update(EnrolmentCode)
        .where(EnrolmentCode.id == code.id, EnrolmentCode.revoked_at.is_(None), EnrolmentCode.uses_taken <= uses)
        .values(uses_allowed=uses)
    )
    if result.rowcount != 1:
        session.refresh(code)
        raise BadInput("uses", f"{code.uses_taken} carers have already used this code: enter {code.uses_taken} or more")
    if uses != before:
        _ledger(session, group, child, "code_uses_set", user, {"code_id": code.id, "from": before, "to": uses})
    return before, uses


def _active_block(session: Session, child: Child, email: str) -> CarerBlock | None:
    return session.exec(
        select(CarerBlock).where(CarerBlock.child_id == child.id, CarerBlock.email == email,
                                 CarerBlock.lifted_at.is_(None))
    ).first()


def _revoke_invitations(session: Session, child: Child, email: str) -> int:
    result = session.exec(
        update(CarerInvitation)
        .where(CarerInvitation.child_id == child.id, CarerInvitation.email == email,
               CarerInvitation.used_at.is_(None), CarerInvitation.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount


def parse_emails(raw: str | None) -> list[str]:
    """Up to MAX_INVITES_AT_ONCE email addresses typed one per line (or with commas), in normal form."""
    found: list[str] = []
    for item in filter(None, _EMAIL_SPLIT.split(raw or "")):
        try:
            address = valid_email(item)
        except Invalid as exc:
            raise BadInput("emails", f"‘{item[:60]}’ is not a valid email address") from exc
        if address not in found:
            found.append(address)
    if not found:
        raise BadInput("emails", "Enter at least one email address")
    if len(found) > MAX_INVITES_AT_ONCE:
        raise BadInput("emails", f"Enter at most {MAX_INVITES_AT_ONCE} email addresses")
    return found


def invite_carers(session: Session, child: Child, group: Group, raw: str | None) -> list[str]:
    """Email each address a personal, single-use invitation for this child; an earlier open one stops working."""
    emails = parse_emails(raw)
    for address in emails:
        if _active_block(session, child, address):
            raise BadInput("emails", f"{address} is blocked for {child.display_name}: lift the block first")
    for address in emails:
        _revoke_invitations(session, child, address)
        schools.invite_carer(session, group, child, address)
    return emails


@dataclass
class Blocked:
    """A block just made: invitations it cancelled, and carers already in or on the way."""

    block: CarerBlock
    invitations_cancelled: int
    already_joined: int


def block_carer(session: Session, child: Child, group: Group, user: User, raw_email: str | None,
                raw_reason: str | None) -> Blocked:
    """Stop an email joining through this child (a court order, say) and cancel its open invitations."""
    try:
        address = valid_email(raw_email)
    except Invalid as exc:
        raise BadInput("email", "Enter the carer's email address, like name@example.com") from exc
    # Checked before spaces are tidied: some control characters count as spaces, NUL does not.
    if has_control(raw_reason or "", line_breaks=True):
        raise BadInput("reason", "The reason must only include letters, numbers and punctuation")
    reason = " ".join((raw_reason or "").split())
    if not reason:
        raise BadInput("reason", "Enter the reason, for the school's records (it is never shown to the carer)")
    if len(reason) > REASON_MAX:
        raise BadInput("reason", f"The reason must be {REASON_MAX} characters or fewer")
    if _active_block(session, child, address):
        raise BadInput("email", f"{address} is already blocked for {child.display_name}")
    block = CarerBlock(child_id=child.id, email=address, reason=reason, created_by_user_id=user.id)
    session.add(block)
    session.flush()
    cancelled = _revoke_invitations(session, child, address)
    joined = session.exec(
        select(func.count()).select_from(Membership).join(Person, Person.id == Membership.person_id)
        .where(Membership.child_id == child.id, Person.email == address,
               Membership.status.not_in([s.value for s in ENDED]))
    ).one()
    # The ledger names the address only by its digest: it is personal data, and the ledger is kept for good.
    _ledger(session, group, child, "carer_block", user,
            {"block_id": block.id, "email_sha256": email_digest(address), "invitations_cancelled": cancelled})
    return Blocked(block, cancelled, joined)


def _block_id(raw: object) -> int | None:
    """The block id a lift button posts back; None for anything that cannot be one (forged or mangled)."""
    text = str(raw if raw is not None else "").strip()
    # Not int() alone: it takes '４２' and '1_000', and a 30-digit id would overflow SQLite.
    return int(text) if ascii_number(text) else None


def lift_block(session: Session, child: Child, group: Group, user: User, block_id: object) -> CarerBlock:
    """Lift one of this child's blocks; BadInput when it is not one, or is lifted already."""
    block_id = _block_id(block_id)
    block = session.get(CarerBlock, block_id) if block_id is not None else None
    if block is None or block.child_id != child.id or block.lifted_at is not None:
        raise BadInput("block_id", "That block has already been lifted")
    result = session.exec(
        update(CarerBlock).where(CarerBlock.id == block.id, CarerBlock.lifted_at.is_(None)).values(lifted_at=utcnow())
    )
    if result.rowcount != 1:
        raise BadInput("block_id", "That block has already been lifted")
    _ledger(session, group, child, "carer_block_lift", user,
            {"block_id": block.id, "email_sha256": email_digest(block.email)})
    session.refresh(block)
    return block
