"""The membership state machine, shared by every module that moves a membership."""

from __future__ import annotations

from .models import Membership, Person, Status, utcnow

TRANSITIONS: dict[Status, set[Status]] = {
    Status.DETAILS_GIVEN: {Status.EMAIL_VERIFIED, Status.EXPIRED, Status.REJECTED, Status.LEFT},
    Status.EMAIL_VERIFIED: {Status.AGREED, Status.REJECTED, Status.LEFT},
    Status.AGREED: {Status.PENDING_APPROVAL, Status.APPROVED, Status.LEFT},
    Status.PENDING_APPROVAL: {Status.APPROVED, Status.REJECTED, Status.LEFT},
    Status.APPROVED: {Status.INVITED, Status.LEFT, Status.REMOVED},
    Status.INVITED: {Status.INVITED, Status.LINK_USED, Status.LEFT, Status.REMOVED},
    Status.LINK_USED: {Status.INVITED, Status.LEFT, Status.REMOVED},
    Status.REJECTED: set(),
    Status.LEFT: set(),
    Status.REMOVED: set(),
    Status.EXPIRED: set(),
}

# Statuses from which a membership never comes back; the parent must start again.
ENDED = frozenset(status for status, moves in TRANSITIONS.items() if not moves)


class IllegalTransition(Exception):
    """A membership was asked to move somewhere its status does not allow."""


def move(membership: Membership, to: Status) -> None:
    """Change a membership's status, refusing moves the state machine does not allow."""
    if to not in TRANSITIONS[Status(membership.status)]:
        raise IllegalTransition(f"{membership.status} → {to}")
    membership.status = to
    membership.updated_at = utcnow()


def person_actor(person: Person) -> str:
    """How the ledger names a parent acting for themselves."""
    return f"person:{person.ref}"
