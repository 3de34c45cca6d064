"""SQLModel tables, split by domain; import from here."""

from .base import UTCDateTime, read_view, read_views, utcnow
from .concerns import (
    CONCERN_STATUS_LABELS,
    INCIDENT_LABELS,
    Concern,
    ConcernStatus,
    ConcernUpdate,
    Incident,
    IncidentAction,
    incident_label,
)
from .people import Invite, Membership, ParentSignIn, Person, Status, Verification, sort_name
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
from .views import (
    EnrolmentCodeView,
    GroupView,
    InviteView,
    MembershipView,
    PersonView,
    PolicyVersionView,
    SchoolView,
)

__all__ = [
    "CONCERN_STATUS_LABELS", "Concern", "ConcernStatus", "ConcernUpdate", "INCIDENT_LABELS", "Incident",
    "IncidentAction", "ParentSignIn", "incident_label",
    "CarerBlock", "CarerInvitation", "Child", "DOCUMENT_TITLES", "DocumentKind", "EnrolmentCode", "Group", "GroupBlock",
    "GroupModerator", "Invite", "LedgerEntry", "LedgerHead", "Membership", "OutboxMessage",
    "PLATFORM_LABELS", "Person", "Platform", "PolicyVersion", "Role", "School", "Status",
    "UTCDateTime", "User", "Verification", "read_view", "read_views", "sort_name", "utcnow",
    "EnrolmentCodeView", "GroupView", "InviteView", "MembershipView", "PersonView", "PolicyVersionView", "SchoolView",
]
