"""Parents' personal details, their memberships and one-time invites."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, Index, SQLModel

from .base import UTCDateTime, created_field, utcnow, when_field


def new_ref() -> str:
    """A random pseudonymous reference, the only way the ledger names a person."""
    return uuid.uuid4().hex


class Person(SQLModel, table=True):
    """Contact details given by a parent; erasable, and never copied into the ledger."""

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(default_factory=new_ref, max_length=32, unique=True)
    name: str | None = Field(default=None, max_length=80)
    email: str | None = Field(default=None, max_length=254, index=True)
    mobile: str | None = Field(default=None, max_length=20)
    created_at: datetime = created_field()
    erased_at: datetime | None = when_field()


class Status(StrEnum):
    """Where a membership stands; see membership.journey.TRANSITIONS for the moves."""

    DETAILS_GIVEN = "details_given"
    EMAIL_VERIFIED = "email_verified"
    AGREED = "agreed"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    INVITED = "invited"
    LINK_USED = "link_used"
    REJECTED = "rejected"
    LEFT = "left"
    REMOVED = "removed"
    EXPIRED = "expired"  # email never verified; the code use went back


class Verification(StrEnum):
    """How the parent showed they have a child in the class."""

    INVITATION = "invitation"
    CODE = "code"
    NONE = "none"  # named the child; a moderator must vouch
    MODERATOR = "moderator"  # a moderator vouched for a no-code request


class Membership(SQLModel, table=True):
    """One parent's place (or request for a place) in one group, for one child."""

    # The staff records list pages a whole school in (group, name) order and searches by name:
    # the listing index serves both without touching the person table or sorting every member.
    # (person, group) finds one parent's place in a group from their email's people alone, so
    # the lookup never walks a whole class, whatever the planner believes about its size.
    __table_args__ = (
        Index("ix_membership_listing", "group_id", "name_erased", "sort_name", "id"),
        Index("ix_membership_group_status", "group_id", "status"),
        Index("ix_membership_person_group", "person_id", "group_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="class_group.id")
    person_id: int = Field(foreign_key="person.id")
    child_id: int | None = Field(default=None, foreign_key="child.id", index=True)
    claimed_child_name: str | None = Field(default=None, max_length=40)
    relationship: str = Field(max_length=20)
    status: str = Field(default=Status.DETAILS_GIVEN, max_length=20, index=True)
    verified_by: str = Field(max_length=20)
    vouched_by_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    code_id: int | None = Field(default=None, foreign_key="enrolment_code.id", index=True)
    carer_invitation_id: int | None = Field(default=None, foreign_key="carer_invitation.id")
    holds_code_use: bool = Field(default=False)
    coc_version_id: int | None = Field(default=None, foreign_key="policy_version.id")
    notice_version_id: int | None = Field(default=None, foreign_key="policy_version.id")
    needs_reagree: bool = Field(default=False)
    email_verified_at: datetime | None = when_field()
    agreed_at: datetime | None = when_field()
    approved_at: datetime | None = when_field()
    ended_at: datetime | None = when_field()
    end_reason: str | None = Field(default=None, max_length=40)
    end_note: str | None = Field(default=None, max_length=500)
    seen_in_chat_at: datetime | None = when_field()
    # Someone who left or was removed after using their link is still in the chat until a
    # moderator takes them out: the task is due from the first time, done at the second.
    chat_removal_due_at: datetime | None = when_field(index=True)
    chat_removed_at: datetime | None = when_field()
    chat_removed_by_user_id: int | None = Field(default=None, foreign_key="user_account.id")
    # The person's name, lowercased, and whether it was erased: kept in step with Person.name on
    # every flush (membership.db), so lists order and search members without joining people.
    sort_name: str | None = Field(default=None, max_length=80)
    name_erased: bool = Field(default=False)
    created_at: datetime = created_field()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def sort_name(name: str | None) -> str | None:
    """How a person's name is ordered and searched in lists: lowercased (None once erased)."""
    return name.lower()[:80] if name else None


class Invite(SQLModel, table=True):
    """A one-time link into the group chat; only a hash of its secret part is stored."""

    id: int | None = Field(default=None, primary_key=True)
    membership_id: int = Field(foreign_key="membership.id", index=True)
    nonce_hash: str = Field(max_length=64)
    issued_at: datetime = created_field()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = when_field()
    revoked_at: datetime | None = when_field()


class ParentSignIn(SQLModel, table=True):
    """A magic link emailed to a parent for /me/: single use, short-lived, and the session it opens.

    The email is the parent's own address as they typed it; the row goes when the person erases
    their details, and the retention job deletes old rows.
    """

    __tablename__ = "parent_sign_in"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, index=True)
    nonce_hash: str = Field(max_length=64)
    created_at: datetime = created_field()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = when_field()
    signed_out_at: datetime | None = when_field()
