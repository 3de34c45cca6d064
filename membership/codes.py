"""Printed enrolment codes: generation, normalisation, lookup and use reservation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, update
from sqlmodel import Session, select

from .db import write_rows
from .models import Child, EnrolmentCode, Membership, Status, utcnow

# Crockford base32: no I, L, O or U, so a code read aloud or from paper is hard to misread.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12  # 60 bits
_LETTER_BITS = len(ALPHABET) - 1  # 0b11111
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})


class CodeRefused(Exception):
    """The code is wrong, unknown, revoked or has no uses left (deliberately not said which)."""


def generate() -> str:
    """A fresh random code in its canonical 12-character form.

    The alphabet has 32 letters, so the low five bits of a random byte pick one evenly: one call
    for the system's randomness per code, not one per letter (a class list of 10,000 needs 10,000).
    """
    return "".join(ALPHABET[byte & _LETTER_BITS] for byte in secrets.token_bytes(CODE_LENGTH))


def display(code: str) -> str:
    """Format a canonical code as XXXX-XXXX-XXXX for letters and screens."""
    return "-".join(code[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalise(raw: str) -> str | None:
    """Canonicalise what a parent typed; None if it cannot be a code at all."""
    cleaned = "".join(ch for ch in raw.upper() if not ch.isspace() and ch not in "-–—.")
    cleaned = cleaned.translate(_CONFUSABLE)
    if len(cleaned) != CODE_LENGTH or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned


def code_hmac(code: str) -> str:
    """The only stored form of a code: HMAC-SHA256 under the server's code key."""
    key = current_app.config["CODE_HMAC_KEY"].encode()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


def issue_code(session: Session, child: Child, uses_allowed: int = 2) -> str:
    """Give a child a new code, revoking any earlier one; return the code (shown once)."""
    now = utcnow()
    session.exec(
        update(EnrolmentCode)
        .where(EnrolmentCode.child_id == child.id, EnrolmentCode.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    code = generate()
    session.add(EnrolmentCode(child_id=child.id, code_hmac=code_hmac(code), uses_allowed=uses_allowed))
    session.flush()
    return code


def typed(raw: str) -> tuple[str | None, str]:
    """What a parent typed as a code: its canonical form (None if it cannot be one) and the digest to look up.

    Even malformed input is hashed, so a wrong guess costs the same time as a right one.
    """
    code = normalise(raw or "")
    return code, code_hmac(code or "0" * CODE_LENGTH)


def find(session: Session, raw: str, group_id: int) -> EnrolmentCode:
    """Look up a typed code for a group; raise CodeRefused for anything unusable."""
    code, digest = typed(raw)
    row = session.exec(_CODE_IN_GROUP, params={"digest": digest, "group_id": group_id}).first()
    return usable(session, code, digest, row)


def usable(session: Session, code: str | None, digest: str, row: EnrolmentCode | None) -> EnrolmentCode:
    """The code row found for what was typed (see typed), if it can be used; else raise CodeRefused.

    row may be the model or its read view (models.EnrolmentCodeView): only its columns are read.
    """
    if code is None or row is None or not hmac.compare_digest(row.code_hmac, digest):
        raise CodeRefused()
    if row.revoked_at is not None:
        raise CodeRefused()
    if row.uses_taken >= row.uses_allowed and row.uses_taken - stale_holds(session, row.id) >= row.uses_allowed:
        # Every use is taken, and none by a start that was never confirmed in time (whose use
        # reserve_use gives back when this parent's details are saved).
        raise CodeRefused()
    return row


def reserve_use(session: Session, code_id: int) -> None:
    """Take one use of a code atomically, or raise CodeRefused if none is left.

    The conditional UPDATE is the whole guarantee: PostgreSQL re-checks the WHERE clause after
    waiting on a concurrent writer's row lock, and SQLite runs writers one at a time.
    """
    if write_rows(session, _TAKE_USE, {"code": code_id}).rowcount == 1:
        return
    # Every use is taken: give back any held too long by starts never confirmed, then try once more.
    if not release_stale(session, code_id) or write_rows(session, _TAKE_USE, {"code": code_id}).rowcount != 1:
        raise CodeRefused()


# Built once, on the table: a request that takes a use never reads the count back.
_CODES = EnrolmentCode.__table__.c
_TAKE_USE = (
    update(EnrolmentCode.__table__)
    .where(_CODES.id == bindparam("code"), _CODES.revoked_at.is_(None), _CODES.uses_taken < _CODES.uses_allowed)
    .values(uses_taken=_CODES.uses_taken + 1)
)


def _hold_cutoff():
    """Starts made before this moment whose email is still unconfirmed have held their code use too long."""
    return utcnow() - timedelta(hours=current_app.config["RESERVATION_HOURS"])


def hold_lapsed(membership: Membership) -> bool:
    """True when this start has held its code use longer than the reservation window."""
    return membership.created_at < _hold_cutoff()


def stale_holds(session: Session, code_id: int) -> int:
    """How many of a code's uses are held by starts whose email was not verified in time."""
    return len(session.exec(_STALE_HOLDS_OF_CODE, params={"cutoff": _hold_cutoff(), "code_id": code_id}).all())


def release_stale(session: Session, code_id: int | None = None) -> int:
    """Give back the uses held by starts whose email was not verified in time; return how many."""
    params = {"cutoff": _hold_cutoff()}
    query = _STALE_HOLDS
    if code_id is not None:
        query, params["code_id"] = _STALE_HOLDS_OF_CODE, code_id
    stale = session.exec(query, params=params).all()
    return sum(end_unconfirmed(session, membership_id, Status.EXPIRED) for membership_id in stale)


# Built once: a code's lookup and its stale holds are checked at every code step of every journey.
_CODE_IN_GROUP = (
    select(EnrolmentCode)
    .join(Child, Child.id == EnrolmentCode.child_id)
    .where(EnrolmentCode.code_hmac == bindparam("digest"), Child.group_id == bindparam("group_id"))
)
_STALE_HOLDS = select(Membership.id).where(
    Membership.status == Status.DETAILS_GIVEN,
    Membership.holds_code_use.is_(True),
    Membership.created_at < bindparam("cutoff"),
)
_STALE_HOLDS_OF_CODE = _STALE_HOLDS.where(Membership.code_id == bindparam("code_id"))


def end_unconfirmed(session: Session, membership_id: int, status: Status, reason: str | None = None) -> bool:
    """End a start whose email is not yet confirmed and give its code use back; False if it moved on.

    Only the writer whose UPDATE flips the row gives the use back, so it is never returned twice.
    """
    held_code_id = session.exec(
        select(Membership.code_id).where(Membership.id == membership_id, Membership.holds_code_use.is_(True))
    ).first()
    now = utcnow()
    flipped = session.exec(
        update(Membership)
        .where(Membership.id == membership_id, Membership.status == Status.DETAILS_GIVEN)
        .values(status=status, holds_code_use=False, ended_at=now, updated_at=now, end_reason=reason)
    )
    if flipped.rowcount != 1:
        return False
    if held_code_id is not None:
        session.exec(
            update(EnrolmentCode)
            .where(EnrolmentCode.id == held_code_id, EnrolmentCode.uses_taken > 0)
            .values(uses_taken=EnrolmentCode.uses_taken - 1)
        )
    return True
