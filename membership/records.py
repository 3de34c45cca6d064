"""Acceptance records for school staff: who agreed to what and when, per group and per person, and the export.

Plain functions over a Session. The lists run a fixed number of statements whatever the number
of members; the export streams the ledger with yield_per, so its memory does not grow with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, case, func, literal, or_, union_all
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from .models import (
    Child,
    DocumentKind,
    Group,
    LedgerEntry,
    LedgerHead,
    Membership,
    Person,
    PolicyVersion,
    School,
    Status,
    User,
)
from .moderation import ACTIVE

PAGE_SIZE = 50
SEARCH_MAX = 80
EXPORT_BATCH = 1000

# The list's filters (query parameter `show`), as staff name them.
FILTERS = {
    "reagree": "Must re-agree",
    "pending": "Waiting for a moderator",
    "removed": "Removed",
    "left": "Left",
}

STATUS_LABELS = {
    Status.DETAILS_GIVEN: "Email not confirmed yet",
    Status.EMAIL_VERIFIED: "Email confirmed, not agreed yet",
    Status.AGREED: "Agreed",
    Status.PENDING_APPROVAL: "Waiting for a moderator",
    Status.APPROVED: "Approved",
    Status.INVITED: "Link sent",
    Status.LINK_USED: "Link used",
    Status.REJECTED: "Declined",
    Status.LEFT: "Left",
    Status.REMOVED: "Removed",
    Status.EXPIRED: "Email never confirmed",
}

ACTION_LABELS = {
    "request": "Asked to join",
    "email_verified": "Confirmed their email address",
    "agree": "Agreed to",
    "acknowledge": "Acknowledged",
    "decline": "Declined",
    "withdraw": "Left the group, or withdrew before joining",
    "approve": "Approved",
    "reject": "Declined the request",
    "vouch": "Vouched for",
    "remove": "Removed",
    "seen_in_chat": "Seen in the chat",
    "invite_issue": "Link sent",
    "invite_redeem": "Link used",
    "invite_revoke": "Link cancelled",
    "chat_link_set": "Chat link set",
    "accept_moderator_notice": "Accepted the moderator notice",
    "moderator_appoint": "Moderator appointed",
    "moderator_stand_down": "Moderator stood down",
    "incident": "Action recorded by the school",
    "removed_from_chat": "Taken out of the chat by a moderator",
    "erase": "Personal details erased",
}


def action_label(action: str) -> str:
    """A ledger action as staff read it."""
    return ACTION_LABELS.get(action, action.replace("_", " ").capitalize())


@dataclass
class RecordRow:
    """One membership with what the records list shows about it."""

    membership: Membership
    person: Person
    child: Child | None
    group: Group
    coc_version: int | None
    notice_version: int | None
    needs_reagree: bool

    @property
    def name(self) -> str:
        """The person's name, or a note that they erased it."""
        return self.person.name or "Details erased"

    @property
    def child_name(self) -> str:
        """The child's display name, or the name a no-code parent gave."""
        return self.child.display_name if self.child else (self.membership.claimed_child_name or "")

    @property
    def status_label(self) -> str:
        """Where the membership stands, in words."""
        return STATUS_LABELS.get(Status(self.membership.status), self.membership.status)


@dataclass
class RecordPage:
    """One page of the records list."""

    rows: list[RecordRow]
    total: int
    page: int
    pages: int

    @property
    def has_previous(self) -> bool:
        """True after the first page."""
        return self.page > 1

    @property
    def has_next(self) -> bool:
        """True before the last page."""
        return self.page < self.pages


def _material_versions(session: Session, school_id: int) -> dict[str, int]:
    """The newest material version number of each document kind."""
    rows = session.exec(
        select(PolicyVersion.kind, func.max(PolicyVersion.number))
        .where(PolicyVersion.school_id == school_id, PolicyVersion.material.is_(True))
        .group_by(PolicyVersion.kind)
    ).all()
    return dict(rows)


def record_page(
    session: Session, school: School, *, group: Group | None = None, show: str = "", search: str = "", page: int = 1
) -> RecordPage:
    """A page of the school's memberships (or one group's), filtered and searched, in four statements."""
    material = _material_versions(session, school.id)
    coc, notice = aliased(PolicyVersion), aliased(PolicyVersion)
    # The flag is set when a material version is published; comparing numbers as well keeps the
    # list right for anyone who agreed before a version the flag missed (as the moderators' list does).
    outdated = or_(
        Membership.needs_reagree.is_(True),
        func.coalesce(coc.number, 0) < material.get(DocumentKind.CODE_OF_CONDUCT.value, 0),
        func.coalesce(notice.number, 0) < material.get(DocumentKind.DATA_NOTICE.value, 0),
    )
    active = Membership.status.in_([s.value for s in ACTIVE])
    must_reagree = and_(active, outdated)
    conditions = []  # on memberships (and their versions); the school is added where groups are joined
    if group is not None:
        conditions.append(Membership.group_id == group.id)
    if show == "reagree":
        conditions.append(must_reagree)
    elif show == "pending":
        conditions.append(Membership.status == Status.PENDING_APPROVAL)
    elif show in ("removed", "left"):
        conditions.append(Membership.status == (Status.REMOVED if show == "removed" else Status.LEFT))
    search = search.strip()[:SEARCH_MAX]
    if search:
        # Each membership holds its person's name lowercased (in Python, which folds every
        # alphabet); autoescape keeps a typed % or _ literal.
        conditions.append(Membership.sort_name.contains(search.lower(), autoescape=True))

    def joined(query, *, whole: bool = True):
        """The query over memberships with what its filters, order and columns need.

        Counting and ordering read the membership and group rows alone (the name they order and
        search by is the membership's copy): at 50,000 members, joining every person and both
        document versions just to count or order them costs far more than the page itself.
        """
        query = query.select_from(Membership)
        if whole:
            query = query.join(Group, Group.id == Membership.group_id).join(Person, Person.id == Membership.person_id)
        if whole or show == "reagree":
            query = query.outerjoin(coc, coc.id == Membership.coc_version_id).outerjoin(
                notice, notice.id == Membership.notice_version_id
            )
        return query.where(*conditions, *([Group.school_id == school.id] if whole else []))

    # How many match in each of the school's groups, in the list's order (by name): the total, and
    # which groups the requested page falls in. Counted group by group on the membership indexes.
    matching = joined(select(func.count(Membership.id)), whole=False).where(Membership.group_id == Group.id)
    counted = session.exec(
        select(Group.id, matching.correlate(Group).scalar_subquery())
        .where(Group.school_id == school.id)
        .order_by(Group.name, Group.id)
    ).all()
    total = sum(count for _group_id, count in counted)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    flag = case((must_reagree, True), else_=False)
    page_ids = _page_ids(session, joined, counted, page)
    # The fifty whole rows by primary key, put back in the page's order here (asked to order them
    # itself, the database would walk the group's index again rather than look up fifty ids).
    position = {membership_id: number for number, membership_id in enumerate(page_ids)}
    query = (
        joined(select(Membership, Person, Child, Group, coc.number, notice.number, flag))
        .outerjoin(Child, Child.id == Membership.child_id)
        .where(Membership.id.in_(page_ids))
    )
    rows = sorted(
        (RecordRow(m, p, c, g, cv, nv, bool(f)) for m, p, c, g, cv, nv, f in session.exec(query).all()),
        key=lambda row: position[row.membership.id],
    )
    return RecordPage(rows, total, page, pages)


def _page_ids(session: Session, joined, counts: list[tuple[int, int]], page: int) -> list[int]:
    """The ids on one page: groups by name, then people by name (erased last), then by id.

    Each group's slice is read on its own, in the order of ix_membership_listing, so the database
    walks that index to the page instead of sorting every member of the school (PostgreSQL sorted
    all 50,000 to reach a late page). The slices of the groups the page spans go in one statement.
    """
    skip, wanted, parts = (page - 1) * PAGE_SIZE, PAGE_SIZE, []
    for group_id, count in counts:
        if wanted == 0:
            break
        if skip >= count:
            skip -= count
            continue
        take = min(wanted, count - skip)
        part = (
            joined(select(Membership.id, Membership.name_erased, Membership.sort_name), whole=False)
            .where(Membership.group_id == group_id)
            .order_by(Membership.name_erased, Membership.sort_name, Membership.id)
            .offset(skip)
            .limit(take)
            .subquery()
        )
        parts.append(select(literal(len(parts)).label("part"), part.c.id, part.c.name_erased, part.c.sort_name))
        skip, wanted = 0, wanted - take
    if not parts:
        return []
    slices = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    # The slices in the list's order: a sort of at most fifty rows.
    return list(session.exec(
        select(slices.c.id).order_by(slices.c.part, slices.c.name_erased, slices.c.sort_name, slices.c.id)
    ).all())


@dataclass
class EntryRow:
    """One ledger entry as the person's record shows it."""

    entry: LedgerEntry
    label: str
    by: str
    detail: dict


@dataclass
class PersonRecord:
    """Everything the ledger holds about one membership, oldest first."""

    row: RecordRow
    entries: list[EntryRow]


def person_record(session: Session, school: School, membership: Membership) -> PersonRecord:
    """A membership and every ledger entry about that person in this school, in four statements."""
    row = session.exec(
        select(Membership, Person, Child, Group)
        .join(Person, Person.id == Membership.person_id)
        .join(Group, Group.id == Membership.group_id)
        .outerjoin(Child, Child.id == Membership.child_id)
        .where(Membership.id == membership.id, Group.school_id == school.id)
    ).one()
    m, person, child, group = row
    versions = {
        v.id: v.number for v in session.exec(
            select(PolicyVersion).where(PolicyVersion.id.in_([i for i in (m.coc_version_id, m.notice_version_id) if i]))
        ).all()
    }
    entries = session.exec(
        select(LedgerEntry)
        .where(
            LedgerEntry.school_id == school.id,
            or_(LedgerEntry.membership_id == m.id, LedgerEntry.person_ref == person.ref),
        )
        .order_by(LedgerEntry.seq)
    ).all()
    record_row = RecordRow(
        m, person, child, group, versions.get(m.coc_version_id), versions.get(m.notice_version_id),
        bool(m.needs_reagree),
    )
    names = _actor_names(session, school, [e.actor for e in entries])
    rows = []
    for entry in entries:
        if entry.actor == f"person:{person.ref}":
            by = "The parent or carer"
        else:
            by = names.get(entry.actor, entry.actor)
        rows.append(EntryRow(entry, action_label(entry.action), by, json.loads(entry.detail or "{}")))
    return PersonRecord(record_row, rows)


def _actor_names(session: Session, school: School, actors: list[str]) -> dict[str, str]:
    """'user:<id>' actors of this school named as 'Name (moderator)', in one statement."""
    ids = {int(a.split(":", 1)[1]) for a in actors if a.startswith("user:") and a.split(":", 1)[1].isdigit()}
    if not ids:
        return {}
    users = session.exec(select(User).where(User.id.in_(ids), User.school_id == school.id)).all()
    return {f"user:{u.id}": f"{u.name or u.email} ({u.role})" for u in users}


# --- The CSV export -----------------------------------------------------------------------------

# The brief's columns first, then the other chained fields, so the school can recompute every
# hash from the file alone: hash = sha256(prev_hash + canonical_json(entry)).
EXPORT_COLUMNS = (
    "seq", "created_at", "action", "person_ref", "person_name", "group_slug", "child_name",
    "document_kind", "document_version", "document_sha256", "statement", "channel", "entry_hash", "prev_hash",
    "actor", "detail", "group_id", "child_id", "membership_id", "document_version_id",
)
# A spreadsheet runs a cell starting with one of these as a formula; names are typed by parents.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def utc_iso(moment: datetime) -> str:
    """A UTC timestamp as the ledger chains it: 2026-01-10T14:05:00.123456Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _safe_cell(text: str | None) -> str:
    """Text typed by a person, defused for spreadsheets (not used for chained fields, which must match)."""
    text = text or ""
    return f"'{text}" if text.startswith(FORMULA_START) else text


def _blank(value: object) -> object:
    """None as an empty cell."""
    return "" if value is None else value


def export_rows(session: Session, school: School, group: Group | None, now: datetime) -> Iterator[list]:
    """The export, row by row: the chain head and entry count, a blank line, the header, then one row per entry.

    Entries are read in batches (yield_per) and only up to the head read first, so an entry
    appended while the file streams cannot make the rows disagree with the head they carry.
    """
    head = session.get(LedgerHead, school.id)
    head_seq, head_hash = (head.seq, head.head_hash) if head else (0, "")
    yield ["Classgate acceptance ledger", school.name]
    yield ["school", school.slug]
    yield ["school_id", school.id]
    yield ["exported_at", utc_iso(now)]
    yield ["chain_entries", head_seq]
    yield ["chain_head_hash", head_hash]
    yield ["group", group.slug if group else "all"]
    yield []
    yield list(EXPORT_COLUMNS)
    e = LedgerEntry
    query = (
        select(
            e.seq, e.created_at, e.action, e.person_ref, Person.name, Person.erased_at, Group.slug,
            Child.display_name, e.document_kind, e.document_version, e.document_sha256, e.statement, e.channel,
            e.entry_hash, e.prev_hash, e.actor, e.detail, e.group_id, e.child_id, e.membership_id,
            e.document_version_id,
        )
        .outerjoin(Person, Person.ref == e.person_ref)
        .outerjoin(Group, Group.id == e.group_id)
        .outerjoin(Child, Child.id == e.child_id)
        .where(e.school_id == school.id, e.seq <= head_seq)
        .order_by(e.seq)
        .execution_options(yield_per=EXPORT_BATCH)
    )
    if group is not None:
        query = query.where(e.group_id == group.id)
    result = session.exec(query)
    try:
        for (seq, created_at, action, ref, name, erased_at, slug, child, kind, version, sha, statement, channel,
             entry_hash, prev_hash, actor, detail, group_id, child_id, membership_id, version_id) in result:
            yield [
                seq, utc_iso(created_at), action, _blank(ref), "" if erased_at else _safe_cell(name), _blank(slug),
                _safe_cell(child), _blank(kind), _blank(version), _blank(sha), _blank(statement), channel,
                entry_hash, prev_hash, actor, detail, _blank(group_id), _blank(child_id), _blank(membership_id),
                _blank(version_id),
            ]
    finally:
        # A download abandoned half way leaves the server-side cursor open otherwise.
        result.close()


def export_filename(school: School, group: Group | None, now: datetime) -> str:
    """A dated, filename-safe name: elm-primary-year-2-ash-ledger-2026-01-10.csv (slugs are already safe)."""
    parts = [school.slug, *([group.slug] if group else []), "ledger", now.astimezone(UTC).strftime("%Y-%m-%d")]
    return "-".join("".join(ch for ch in part if ch.isalnum() or ch == "-") for part in parts) + ".csv"
