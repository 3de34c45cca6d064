"""SQLModel tables, split by domain; import from here."""

from .base import UTCDateTime, utcnow
from .people import Invite, Membership, Person, Status, Verification
from .records import (
    DOCUMENT_TITLES,
    DocumentKind,
    LedgerEntry,
    LedgerHead,
    OutboxMessage,
    PolicyVersion,
)
from .school import (
    PLATFORM_LABELS,
    CarerBlock,
    CarerInvitation,
    Child,
    EnrolmentCode,
    Group,
    GroupBlock,
    GroupModerator,
    Platform,
    Role,
    School,
    User,
)

__all__ = [
    "CarerBlock", "CarerInvitation", "Child", "DOCUMENT_TITLES", "DocumentKind", "EnrolmentCode", "Group", "GroupBlock",
    "GroupModerator", "Invite", "LedgerEntry", "LedgerHead", "Membership", "OutboxMessage",
    "PLATFORM_LABELS", "Person", "Platform", "PolicyVersion", "Role", "School", "Status",
    "UTCDateTime", "User", "Verification", "utcnow",
]
