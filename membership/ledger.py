"""The acceptance ledger: append-only, hash-chained per school.

hash = sha256(prev_hash + canonical_json(entry)). Appends lock the school's chain head (a row
lock on PostgreSQL; SQLite's writer lock, taken by BEGIN IMMEDIATE), so concurrent agreements
queue rather than fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import bindparam, event, insert
from sqlmodel import Session, select

from .db import write_rows
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


HEADS = "classgate_locked_ledger_heads"


def _lock_head(session: Session, school_id: int) -> LedgerHead:
    """The school's chain head, locked until the transaction ends (FOR NO KEY UPDATE on PostgreSQL).

    The first append in a transaction reads and locks it; later appends in the same transaction
    (an agreement writes three entries) go on from the copy already held, which nobody else can
    change while the lock lasts.
    """
    heads = session.info.setdefault(HEADS, {})
    if school_id not in heads:
        heads[school_id] = session.exec(_LOCK_HEAD, params={"school_id": school_id}).one()
    return heads[school_id]


# Built once: every change to a membership runs it.
_LOCK_HEAD = (
    select(LedgerHead)
    .where(LedgerHead.school_id == bindparam("school_id"))
    .with_for_update(key_share=True)
    .execution_options(populate_existing=True)
)


@event.listens_for(Session, "after_transaction_end")
def _release_heads(session: Session, transaction) -> None:
    """A lock lasts as long as its transaction: after a commit or rollback the next append reads the head again.

    A flush's own inner transaction ends too, holding the lock still; a savepoint's end forgets
    the copy anyway, as a savepoint rolled back may have moved the head it held.
    """
    if transaction.parent is None or transaction.nested:
        session.info.pop(HEADS, None)


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
    """Add one entry to the end of a school's chain and move the head to it.

    The entry is inserted at once, as a plain row (an entry is never read back or changed by the
    request that writes it, so it needs no place in the session); the head is written at the
    next flush, once however many entries the transaction adds.
    """
    head = _lock_head(session, school_id)
    entry = {
        "school_id": school_id,
        "seq": head.seq + 1,
        "created_at": utcnow(),
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
        "prev_hash": head.head_hash,
    }
    entry["entry_hash"] = compute_hash(head.head_hash, SimpleNamespace(**entry))
    write_rows(session, _INSERT_ENTRY, entry)
    head.seq, head.head_hash = entry["seq"], entry["entry_hash"]
    session.add(head)


_INSERT_ENTRY = insert(LedgerEntry.__table__)


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
    head = session.get(LedgerHead, school_id)
    if head is None or head.seq != count or head.head_hash != running:
        return Verification(school_id, count, running, None, None, "the chain head does not match the last entry")
    return Verification(school_id, count, running)
