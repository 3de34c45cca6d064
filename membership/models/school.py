"""Schools, their class groups, children, enrolment codes and staff accounts."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, Index, SQLModel, UniqueConstraint

from .base import UTCDateTime, created_field, when_field


class Platform(StrEnum):
    """Where the group's chat lives."""

    WHATSAPP = "whatsapp"
    SIGNAL = "signal"
    CLASS_LIST = "classlist"
    OTHER = "other"


PLATFORM_LABELS = {
    Platform.WHATSAPP: "WhatsApp",
    Platform.SIGNAL: "Signal",
    Platform.CLASS_LIST: "Class List",
    Platform.OTHER: "the group chat",
}


class School(SQLModel, table=True):
    """A school; nothing of one school is ever shown to another."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=60, unique=True)
    name: str = Field(max_length=120)
    concerns_email: str = Field(max_length=254)
    complaints_url: str | None = Field(default=None, max_length=500)
    created_at: datetime = created_field()


class Group(SQLModel, table=True):
    """A class or year group's parent chat, guarded by Classgate."""

    __tablename__ = "class_group"
    # The records list walks a school's groups in name order.
    __table_args__ = (Index("ix_class_group_school_name", "school_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    slug: str = Field(max_length=60, unique=True)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    platform: str = Field(default=Platform.WHATSAPP, max_length=20)
    chat_url: str = Field(default="", max_length=500)
    requires_approval: bool = Field(default=False)
    academic_year: str = Field(max_length=9)
    created_at: datetime = created_field()

    @property
    def platform_label(self) -> str:
        """The platform's name as parents know it."""
        return PLATFORM_LABELS.get(Platform(self.platform), "the group chat")


class Child(SQLModel, table=True):
    """A child in a group, known only by a display name (first name and an initial)."""

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="class_group.id", index=True)
    display_name: str = Field(max_length=40)
    created_at: datetime = created_field()


class EnrolmentCode(SQLModel, table=True):
    """A printed code for one child; only its HMAC is stored.

    A use is reserved when a carer submits their details (uses_taken goes up under a
    conditional UPDATE, so two carers can never take the last use) and given back if their
    email is not verified in time.
    """

    __tablename__ = "enrolment_code"

    id: int | None = Field(default=None, primary_key=True)
    child_id: int = Field(foreign_key="child.id", index=True)
    code_hmac: str = Field(max_length=64, unique=True)
    uses_allowed: int = Field(default=2)
    uses_taken: int = Field(default=0)
    created_at: datetime = created_field()
    revoked_at: datetime | None = when_field()


class CarerInvitation(SQLModel, table=True):
    """A personal, single-use invitation emailed by the school to a carer on its records."""

    __tablename__ = "carer_invitation"

    id: int | None = Field(default=None, primary_key=True)
    child_id: int = Field(foreign_key="child.id", index=True)
    email: str = Field(max_length=254)
    nonce_hash: str = Field(max_length=64)
    created_at: datetime = created_field()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = when_field()
    revoked_at: datetime | None = when_field()


class Role(StrEnum):
    """What a signed-in account may do."""

    STAFF = "staff"
    MODERATOR = "moderator"


class User(SQLModel, table=True):
    """A staff member or moderator who signs in with email and password."""

    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    email: str = Field(max_length=254, unique=True)
    name: str = Field(default="", max_length=80)
    role: str = Field(max_length=20)
    password_hash: str | None = Field(default=None, max_length=255)
    password_changed_at: datetime | None = when_field()
    active: bool = Field(default=True)
    notice_version_id: int | None = Field(default=None, foreign_key="policy_version.id")
    notice_accepted_at: datetime | None = when_field()
    created_at: datetime = created_field()

    # Flask-Login's interface. The id carries a fingerprint of the password hash, so changing
    # the password ends every session signed in with the old one.
    @property
    def is_authenticated(self) -> bool:
        """Always true for a loaded account."""
        return True

    @property
    def is_active(self) -> bool:
        """Stood-down accounts cannot sign in."""
        return self.active

    @property
    def is_anonymous(self) -> bool:
        """Never anonymous."""
        return False

    def get_id(self) -> str:
        """The session's reference to this account: id and password fingerprint."""
        digest = hashlib.sha256((self.password_hash or "unset").encode()).hexdigest()[:16]
        return f"{self.id}:{digest}"


class GroupBlock(SQLModel, table=True):
    """Someone removed from a group, kept out of it whatever code they come back with."""

    __tablename__ = "group_block"

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="class_group.id", index=True)
    membership_id: int | None = Field(default=None, foreign_key="membership.id")
    email: str | None = Field(default=None, max_length=254, index=True)
    mobile: str | None = Field(default=None, max_length=20)
    # When the removed person erases their details, the block keeps only keyed hashes of them,
    # so it still recognises them without holding anything readable.
    email_hmac: str | None = Field(default=None, max_length=64, index=True)
    mobile_hmac: str | None = Field(default=None, max_length=64, index=True)
    reason: str = Field(max_length=40)
    created_by_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = created_field()
    lifted_at: datetime | None = when_field()


class CarerBlock(SQLModel, table=True):
    """An email the school has barred from joining through a child (a court order, say)."""

    __tablename__ = "carer_block"

    id: int | None = Field(default=None, primary_key=True)
    child_id: int = Field(foreign_key="child.id", index=True)
    email: str = Field(max_length=254, index=True)
    reason: str = Field(default="", max_length=200)
    created_by_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = created_field()
    lifted_at: datetime | None = when_field()


class GroupModerator(SQLModel, table=True):
    """A moderator appointed to a group."""

    __tablename__ = "group_moderator"
    __table_args__ = (UniqueConstraint("group_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="class_group.id", index=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    appointed_at: datetime = created_field()
    stood_down_at: datetime | None = when_field()
