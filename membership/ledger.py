"""The acceptance ledger: append-only, hash-chained per school.

hash = sha256(prev_hash + canonical_json(entry)). A transaction's entries are chained when it
commits, under a lock on the school's chain head (a row lock on PostgreSQL; SQLite's writer lock,
taken by BEGIN IMMEDIATE), so concurrent agreements queue rather than fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import bindparam, event, insert, update
from sqlmodel import Session, select

from .models import LedgerEntry, LedgerHead, PolicyVersion, utcnow

GENESIS = "0" * 64

# Every field that is chained; adding one here changes every hash, so only ever append.
CHAINED_FIELDS = (
    "school_id", "seq", "created_at", "action", "person_ref", "actor", "group_id", "child_id",
    "membership_id", "document_kind", "document_version", "document_version_id",
    "document_sha256", "statement", "channel", "detail",
)


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(entry: LedgerEntry) -> str:
    """The entry's chained fields as canonical JSON (sorted keys, no spaces, UTF-8)."""
    data = {name: getattr(entry, name) for name in CHAINED_FIELDS}
    data["created_at"] = _stamp(entry.created_at)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_hash(prev_hash: str, entry: LedgerEntry) -> str:
    """The hash that chains this entry to the one before it."""
    return hashlib.sha256((prev_hash + canonical_json(entry)).encode("utf-8")).hexdigest()


def start_chain(session: Session, school_id: int) -> None:
    """Create an empty chain for a new school."""
    session.add(LedgerHead(school_id=school_id, seq=0, head_hash=GENESIS))
    session.flush()


PENDING = "classgate_ledger_pending"


def append(
    session: Session,
    school_id: int,
    action: str,
    *,
    actor: str,
    channel: str,
    person_ref: str | None = None,
    group_id: int | None = None,
    child_id: int | None = None,
    membership_id: int | None = None,
    document: PolicyVersion | None = None,
    statement: str | None = None,
    detail: dict | None = None,
) -> None:
    """Add one entry to the end of a school's chain, in the same transaction as the change it records.

    Entries are chained and written when the transaction commits, all of them at once: the
    school's chain head is locked (FOR NO KEY UPDATE on PostgreSQL) only from then until the
    commit, so agreements queue on it for a moment, not for the whole of each other's requests.
    A rolled-back transaction writes none. Inside a savepoint an entry is written at once, so a
    savepoint rolled back takes its entries with it.
    """
    entry = {
        "school_id": school_id,
        "action": action,
        "person_ref": person_ref,
        "actor": actor,
        "group_id": group_id,
        "child_id": child_id,
        "membership_id": membership_id,
        "document_kind": document.kind if document else None,
        "document_version": document.number if document else None,
        "document_version_id": document.id if document else None,
        "document_sha256": document.sha256 if document else None,
        "statement": statement,
        "channel": channel,
        "detail": json.dumps(detail or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    }
    if session.in_nested_transaction():
        _write(session, [entry])
    else:
        session.info.setdefault(PENDING, []).append(entry)


def _write(session: Session, entries: list[dict]) -> None:
    """Chain entries onto their schools' heads, in the order they were appended, and write them."""
    connection = session.connection()
    now = utcnow()
    for school_id in dict.fromkeys(entry["school_id"] for entry in entries):
        seq, head_hash = connection.execute(_LOCK_HEAD, {"school_id": school_id}).one()
        rows = []
        for entry in entries:
            if entry["school_id"] == school_id:
                seq += 1
                row = {**entry, "seq": seq, "created_at": now, "prev_hash": head_hash}
                row["entry_hash"] = head_hash = compute_hash(head_hash, SimpleNamespace(**row))
                rows.append(row)
        if connection.dialect.name == "postgresql":
            # One round trip per entry (all of them in one with psycopg's executemany): each entry
            # moves the head to itself in the same statement.
            connection.execute(_INSERT_MOVING_HEAD, [
                {**{f"entry_{name}": value for name, value in row.items()},
                 "school": school_id, "new_seq": row["seq"], "new_hash": row["entry_hash"]}
                for row in rows
            ])
        else:
            connection.execute(_INSERT_ENTRY, rows)
            connection.execute(_MOVE_HEAD, {"school": school_id, "new_seq": seq, "new_hash": head_hash})


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Write the transaction's entries just before it commits, after the session's own last changes.

    The changes are flushed first, so the chain's head is locked only for its own two statements
    and the commit; and a row the request changes (its membership, say) is locked before the head,
    the order in which every request that locks a membership up front takes the two.
    """
    pending = session.info.pop(PENDING, None)
    if pending:
        session.flush()
        _write(session, pending)


@event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction) -> None:
    """A transaction that ends without committing (rolled back, or a commit that failed) writes nothing."""
    if transaction.parent is None:
        session.info.pop(PENDING, None)


# Built once, on the tables: every change to a membership runs them.
_HEADS = LedgerHead.__table__.c
_LOCK_HEAD = (
    select(_HEADS.seq, _HEADS.head_hash).where(_HEADS.school_id == bindparam("school_id"))
    .with_for_update(key_share=True)
)
_INSERT_ENTRY = insert(LedgerEntry.__table__)
_MOVE_HEAD = (
    update(LedgerHead.__table__).where(_HEADS.school_id == bindparam("school"))
    .values(seq=bindparam("new_seq"), head_hash=bindparam("new_hash"))
)
# PostgreSQL runs a data-modifying WITH exactly once, whether or not the INSERT reads it.
# The entry's parameters are named apart from the head's columns, which the UPDATE would otherwise set too.
_INSERT_MOVING_HEAD = (
    insert(LedgerEntry.__table__)
    .values({column.name: bindparam(f"entry_{column.name}") for column in LedgerEntry.__table__.c
             if not column.primary_key})
    .add_cte(_MOVE_HEAD.cte("moved_head"))
)


@dataclass
class Verification:
    """The outcome of checking one school's chain."""

    school_id: int
    entries: int
    head_hash: str
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when every entry and the head agree."""
        return self.broken_seq is None and not self.reason


def verify(session: Session, school_id: int) -> Verification:
    """Recompute a school's chain from the first entry and name the first one that does not fit."""
    running, expected_seq, count = GENESIS, 1, 0
    rows = session.exec(
        select(LedgerEntry)
        .where(LedgerEntry.school_id == school_id)
        .order_by(LedgerEntry.seq)
        .execution_options(yield_per=1000)
    )
    try:
        for entry in rows:
            problem = ""
            if entry.seq != expected_seq:
                problem = f"expected entry {expected_seq}, found {entry.seq} (an entry is missing)"
            elif entry.prev_hash != running:
                problem = "its previous-hash does not match the entry before it"
            elif compute_hash(running, entry) != entry.entry_hash:
                problem = "its contents do not match its hash (it was changed after it was written)"
            if problem:
                return Verification(school_id, count, running, entry.seq, entry.id, problem)
            running, expected_seq, count = entry.entry_hash, expected_seq + 1, count + 1
    finally:
        # Stopping at a broken entry leaves the server-side cursor (yield_per) open otherwise.
        rows.close()
    head = session.get(LedgerHead, school_id, populate_existing=True)
    if head is None or head.seq != count or head.head_hash != running:
        return Verification(school_id, count, running, None, None, "the chain head does not match the last entry")
    return Verification(school_id, count, running)
