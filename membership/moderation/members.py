"""A moderator's members: the match list, seen in the chat, removal, invites and the chat link.

Plain functions over a Session. Refusals raise before anything is written, so a refused action
changes nothing; bad input raises validation.Invalid (its message is for the moderator), and an
action the membership's state does not allow raises Refused.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import phonenumbers
from sqlalchemy import case, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from .. import invites, ledger, mail, privacy
from ..models import (
    Child,
    DocumentKind,
    Group,
    GroupBlock,
    Invite,
    Membership,
    Person,
    Platform,
    PolicyVersion,
    Role,
    School,
    Status,
    User,
    utcnow,
)
from ..states import move
from ..validation import Invalid, mask_mobile
from . import ACTIVE, actor

# The code of conduct's own headings under "The sections below are the main rules", so the
# school can read a removal against the rule the moderator says was broken.
REMOVAL_REASONS: dict[str, str] = {
    "grievances": "Grievances about staff or children",
    "abuse": "Abusive or threatening messages",
    "private_conversations": "Private conversations",
    "political_commercial": "Political or commercial posts",
    "private_emails": "Posting private emails",
    "other": "Other: behaviour that breaks the spirit of the code",
}
# A removal the school decided on, recorded with an incident (incidents.record): never a moderator's choice.
SCHOOL_DECISION = "school_decision"
# Every reason a removal can carry, as the moderators' pages name it.
REASON_LABELS: dict[str, str] = {**REMOVAL_REASONS, SCHOOL_DECISION: "Removed by the school after an incident"}
NOTE_MAX = 500  # Membership.end_note
CHAT_URL_MAX = 500  # Group.chat_url
# A WhatsApp group invite: https://chat.whatsapp.com/<code>, the code letters and digits (22 today).
WHATSAPP_PATH = re.compile(r"^/(?:invite/)?[A-Za-z0-9]{6,64}/?$")
ENDED_HERE = (Status.LEFT, Status.REMOVED)
EPOCH = datetime.min.replace(tzinfo=timezone.utc)
NOT_A_MEMBER = "This person is not a current member of the group."


class BadInput(Invalid):
    """Input a moderator must correct; field names the form field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Refused(Exception):
    """The membership's state does not allow this action now; the message says why, for the moderator."""


@dataclass
class MemberRow:
    """One member as the match list shows them, read in the list's constant number of queries."""

    membership: Membership
    person: Person
    child: Child | None
    invite_state: str  # none, open, used, expired or revoked: the newest invite's state
    invite_expires_at: datetime | None
    link_used_at: datetime | None  # the most recent redemption of any of their invites
    coc_version: int | None
    notice_version: int | None
    needs_reagree: bool

    @property
    def child_name(self) -> str:
        """The child's display name, or the name a no-code parent gave."""
        return self.child.display_name if self.child else (self.membership.claimed_child_name or "")

    @property
    def masked_mobile(self) -> str:
        """Enough of the mobile to match a chat join request: +44…456."""
        return mask_mobile(self.person.mobile)

    @property
    def mobile_display(self) -> str:
        """The whole mobile, as the chat app shows it."""
        return format_mobile(self.person.mobile)

    @property
    def awaiting_chat(self) -> bool:
        """Link used but not yet ticked as seen in the chat: a join request is on its way."""
        return self.membership.status == Status.LINK_USED and self.membership.seen_in_chat_at is None


def format_mobile(e164: str | None) -> str:
    """A mobile as chat apps show it (+44 7911 123456), to find someone among the participants."""
    if not e164:
        return "no mobile given"
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _invite_state(invite: Invite | None, now: datetime) -> str:
    """What became of an invite: none, open, used, expired or revoked."""
    if invite is None:
        return "none"
    if invite.used_at is not None:
        return "used"
    if invite.revoked_at is not None:
        return "revoked"
    return "expired" if invite.expires_at <= now else "open"


def _versions(session: Session, school_id: int) -> dict[str, tuple[int, int]]:
    """Per document kind: (current version number, newest material version number)."""
    newest_material = func.max(case((PolicyVersion.material.is_(True), PolicyVersion.number), else_=0))
    rows = session.exec(
        select(PolicyVersion.kind, func.max(PolicyVersion.number), newest_material)
        .where(PolicyVersion.school_id == school_id)
        .group_by(PolicyVersion.kind)
    ).all()
    return {kind: (current, material or 0) for kind, current, material in rows}


def _rows(
    session: Session, group: Group, statuses: tuple[Status, ...], versions: dict[str, tuple[int, int]]
) -> list[MemberRow]:
    """Memberships with these statuses, by name, each joined to everything its row shows, in one statement."""
    # The newest invite of each membership of this group, and when any of its invites was last used.
    latest = (
        select(
            Invite.membership_id.label("membership_id"),
            func.max(Invite.id).label("invite_id"),
            func.max(Invite.used_at).label("used_at"),
        )
        .join(Membership, Membership.id == Invite.membership_id)
        .where(Membership.group_id == group.id)
        .group_by(Invite.membership_id)
        .subquery()
    )
    coc, notice = aliased(PolicyVersion), aliased(PolicyVersion)
    query = (
        select(Membership, Person, Child, Invite, latest.c.used_at, coc.number, notice.number)
        .join(Person, Person.id == Membership.person_id)
        .outerjoin(Child, Child.id == Membership.child_id)
        .outerjoin(latest, latest.c.membership_id == Membership.id)
        .outerjoin(Invite, Invite.id == latest.c.invite_id)
        .outerjoin(coc, coc.id == Membership.coc_version_id)
        .outerjoin(notice, notice.id == Membership.notice_version_id)
        .where(Membership.group_id == group.id, Membership.status.in_([s.value for s in statuses]))
        .order_by(Person.name, Membership.id)
    )
    material_coc = versions.get(DocumentKind.CODE_OF_CONDUCT.value, (0, 0))[1]
    material_notice = versions.get(DocumentKind.DATA_NOTICE.value, (0, 0))[1]
    now = utcnow()
    rows = []
    for membership, person, child, invite, used_at, coc_number, notice_number in session.exec(query).all():
        # The flag is set when a material version is published; comparing numbers as well
        # keeps the list right for anyone who agreed before a version the flag missed.
        outdated = (coc_number or 0) < material_coc or (notice_number or 0) < material_notice
        rows.append(MemberRow(
            membership, person, child, _invite_state(invite, now), invite.expires_at if invite else None,
            used_at, coc_number, notice_number, bool(membership.needs_reagree or outdated),
        ))
    return rows


def _ended_first(rows: list[MemberRow]) -> list[MemberRow]:
    """Who left or was removed, most recent first."""
    return sorted(rows, key=lambda row: row.membership.ended_at or EPOCH, reverse=True)


def members(session: Session, group: Group, *, ended: bool = False) -> list[MemberRow]:
    """Everyone approved, invited or in via their link by name (ended=True: who left or was removed, latest first).

    Two statements whatever the number of members: the memberships joined to their person,
    child, agreed versions and newest invite, and the school's version numbers.
    """
    rows = _rows(session, group, ENDED_HERE if ended else ACTIVE, _versions(session, group.school_id))
    return _ended_first(rows) if ended else rows


@dataclass
class Roster:
    """The members page in one go: current members, those who left or were removed, current versions."""

    members: list[MemberRow]
    ended: list[MemberRow]
    current_coc: int | None
    current_notice: int | None


def roster(session: Session, group: Group) -> Roster:
    """Current and ended members and the current version numbers, in two statements."""
    versions = _versions(session, group.school_id)
    rows = _rows(session, group, ACTIVE + ENDED_HERE, versions)
    return Roster(
        [row for row in rows if row.membership.status in ACTIVE],
        _ended_first([row for row in rows if row.membership.status in ENDED_HERE]),
        versions.get(DocumentKind.CODE_OF_CONDUCT.value, (None, 0))[0],
        versions.get(DocumentKind.DATA_NOTICE.value, (None, 0))[0],
    )


def _locked(session: Session, membership: Membership) -> Membership:
    """Re-read a membership under a row lock: two moderators acting at once queue, and the second sees the first."""
    return session.exec(
        select(Membership)
        .where(Membership.id == membership.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()


def _ledger(session: Session, membership: Membership, action: str, moderator: User, detail: dict) -> None:
    """One moderator decision about a membership, in the school's chain."""
    group = session.get(Group, membership.group_id)
    person = session.get(Person, membership.person_id)
    ledger.append(
        session, group.school_id, action, actor=actor(moderator), channel="moderator", person_ref=person.ref,
        group_id=group.id, child_id=membership.child_id, membership_id=membership.id, detail=detail,
    )


def mark_seen(session: Session, membership: Membership, moderator: User, seen: bool = True) -> bool:
    """Tick (or untick) 'seen in the chat'; False when it was already so, which changes nothing."""
    membership = _locked(session, membership)
    if membership.status != Status.LINK_USED:
        raise Refused("Only a member who has used their link can be marked as seen in the chat.")
    if (membership.seen_in_chat_at is not None) == seen:
        return False
    membership.seen_in_chat_at = utcnow() if seen else None
    membership.updated_at = utcnow()
    session.add(membership)
    _ledger(session, membership, "seen_in_chat", moderator, {"seen": seen})
    return True


@dataclass
class Who:
    """How a moderator recognises a member in the chat: what the removal pages and checklist show."""

    membership_id: int
    name: str
    mobile: str | None  # E.164
    mobile_display: str  # as the chat app shows it, to find them among the participants
    masked_mobile: str
    child_name: str
    reason: str


def _check_removal(reason: str | None, note: str | None, by_staff: bool) -> tuple[str, str | None]:
    """A known reason and a tidy note (required for 'other'), or BadInput; only staff give the school's decision."""
    if reason not in REMOVAL_REASONS and not (by_staff and reason == SCHOOL_DECISION):
        raise BadInput("reason", "Select which part of the code of conduct was broken")
    text = (note or "").strip()
    if any(unicodedata.category(ch) == "Cc" and ch not in "\r\n\t" for ch in text):
        raise BadInput("note", "The note must only include ordinary text")
    if reason == "other" and not text:
        raise BadInput("note", "Enter a note saying what happened: it is needed when the reason is ‘Other’")
    if len(text) > NOTE_MAX:
        raise BadInput("note", f"The note must be {NOTE_MAX} characters or fewer")
    return reason, text or None


def who(session: Session, membership: Membership) -> Who:
    """A member's name, mobile (full and masked), child and removal reason, if any."""
    person = session.get(Person, membership.person_id)
    child = session.get(Child, membership.child_id) if membership.child_id else None
    return Who(
        membership_id=membership.id,
        name=person.name or "This member (details erased)",
        mobile=person.mobile,
        mobile_display=format_mobile(person.mobile),
        masked_mobile=mask_mobile(person.mobile),
        child_name=child.display_name if child else (membership.claimed_child_name or ""),
        reason=REASON_LABELS.get(membership.end_reason or "", membership.end_reason or ""),
    )


def remove(session: Session, membership: Membership, moderator: User, reason: str, note: str | None) -> Who:
    """Remove a member for a breach of the code of conduct, block their return and email them.

    The note stays on the membership, erasable with the person's other details; the ledger
    records only the reason's code, because a free-text note about what someone posted is
    personal data and the ledger can never be changed or erased.
    """
    reason, note = _check_removal(reason, note, by_staff=moderator.role == Role.STAFF)
    membership = _locked(session, membership)
    if membership.status not in ACTIVE:
        raise Refused(NOT_A_MEMBER)
    group = session.get(Group, membership.group_id)
    person = session.get(Person, membership.person_id)
    move(membership, Status.REMOVED)
    membership.ended_at = utcnow()
    membership.end_reason, membership.end_note = reason, note
    session.add(membership)
    invites.revoke(session, membership, actor=actor(moderator), channel="moderator")
    # Blocked by email and mobile, not by membership: coming back with another code (or the
    # other carer's use of the same one) starts a new membership, which the journey refuses.
    session.add(GroupBlock(
        group_id=group.id, membership_id=membership.id, email=person.email, mobile=person.mobile,
        reason=reason, created_by_user_id=moderator.id,
    ))
    _ledger(session, membership, "remove", moderator, {"reason": reason, "blocked": True})
    # The moderator who removed them sees the checklist now; the list keeps it until they tick it.
    privacy.ask_for_chat_removal(
        session, membership, why="removed_by_school" if moderator.role == Role.STAFF else "removed", skip=moderator,
    )
    if person.email:
        mail.queue(
            session, person.email, "removed", kind="removed", person_id=person.id, group=group, person=person,
            school=session.get(School, group.school_id),
        )
    session.flush()
    return who(session, membership)


def reissue_invite(session: Session, membership: Membership, moderator: User) -> str:
    """Cancel a member's open link and email them a new one; return the new token.

    Any current member may be sent one: approved without a link yet, invited, or in via a link
    who needs another. 'Seen in the chat' is cleared: a new link means a new join request.
    """
    membership = _locked(session, membership)
    if membership.status not in ACTIVE:
        raise Refused(NOT_A_MEMBER)
    invites.revoke(session, membership, actor=actor(moderator), channel="moderator")
    membership.seen_in_chat_at = None
    return invites.issue(
        session, membership, actor=actor(moderator), channel="moderator",
        opening="The group's moderator has sent you a new link. Any link we sent you before no longer works.",
    )


def revoke_invite(session: Session, membership: Membership, moderator: User) -> int:
    """Cancel a member's open link; Refused when there is none to cancel."""
    membership = _locked(session, membership)
    open_invite = session.exec(
        select(Invite.id).where(
            Invite.membership_id == membership.id, Invite.used_at.is_(None), Invite.revoked_at.is_(None)
        )
    ).first()
    if open_invite is None:
        raise Refused("There is no unused link to cancel for this member.")
    return invites.revoke(session, membership, actor=actor(moderator), channel="moderator")


def fingerprint(url: str) -> str:
    """The SHA-256 of a chat link: what the ledger keeps, so the school can tell links apart unseen."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def check_chat_url(group: Group, raw: str | None) -> str:
    """A chat link fit to send parents to, or Invalid with a message for the moderator."""
    url = (raw or "").strip()
    if not url:
        raise Invalid("Enter the group's chat link")
    if len(url) > CHAT_URL_MAX:
        raise Invalid(f"The chat link must be {CHAT_URL_MAX} characters or fewer")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in url):
        raise Invalid("The chat link must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number
    except ValueError as exc:
        raise Invalid("Enter a chat link that starts with https://") from exc
    # A userinfo part (https://chat.whatsapp.com@evil.example) hides the real host from people.
    if parts.scheme.lower() != "https" or not parts.hostname or "@" in parts.netloc:
        raise Invalid("Enter a chat link that starts with https://")
    if group.platform == Platform.WHATSAPP and (
        parts.hostname != "chat.whatsapp.com" or port is not None or not WHATSAPP_PATH.match(parts.path)
    ):
        raise Invalid("Enter a WhatsApp group invite link, like https://chat.whatsapp.com/AbCdEf12345")
    return url


def set_chat_link(session: Session, group: Group, moderator: User, url: str | None) -> bool:
    """Set or rotate the group's chat link; False (nothing changed) when it is the same link.

    Open invites follow automatically: redeeming one reads group.chat_url at that moment. The
    ledger keeps only the link's fingerprint, since the link itself is the key to the chat.
    """
    url = check_chat_url(group, url)
    if url == group.chat_url:
        return False
    group.chat_url = url
    session.add(group)
    ledger.append(
        session, group.school_id, "chat_link_set", actor=actor(moderator), channel="moderator",
        group_id=group.id, detail={"sha256": fingerprint(url)},
    )
    return True


def open_invites(session: Session, group: Group) -> int:
    """How many links sent to this group's members are unused and unexpired: they will open a new chat link."""
    return session.exec(
        select(func.count())
        .select_from(Invite)
        .join(Membership, Membership.id == Invite.membership_id)
        .where(
            Membership.group_id == group.id,
            Membership.status == Status.INVITED,
            Invite.used_at.is_(None),
            Invite.revoked_at.is_(None),
            Invite.expires_at > utcnow(),
        )
    ).one()
