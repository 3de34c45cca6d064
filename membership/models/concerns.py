"""Concerns raised with the school, and the incident log staff keep about members."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Date, Text
from sqlmodel import Field, SQLModel

from .base import created_field, when_field


class ConcernStatus(StrEnum):
    """Where a concern stands in the school's inbox."""

    NEW = "new"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


CONCERN_STATUS_LABELS = {
    ConcernStatus.NEW: "New",
    ConcernStatus.IN_PROGRESS: "In progress",
    ConcernStatus.CLOSED: "Closed",
}


class Concern(SQLModel, table=True):
    """A concern about a class group, sent to the school in confidence; moderators never see it."""

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    group_id: int | None = Field(default=None, foreign_key="class_group.id")
    what_happened: str = Field(sa_column=Column(Text, nullable=False))
    contact_name: str | None = Field(default=None, max_length=80)
    contact_email: str | None = Field(default=None, max_length=254)
    contact_phone: str | None = Field(default=None, max_length=20)
    status: str = Field(default=ConcernStatus.NEW, max_length=20, index=True)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
    closed_at: datetime | None = when_field()
    contact_erased_at: datetime | None = when_field()


class ConcernUpdate(SQLModel, table=True):
    """A status change or note a staff member added to a concern."""

    __tablename__ = "concern_update"

    id: int | None = Field(default=None, primary_key=True)
    concern_id: int = Field(foreign_key="concern.id", index=True)
    user_id: int = Field(foreign_key="user_account.id")
    status: str = Field(max_length=20)
    note: str = Field(default="", max_length=2000)
    created_at: datetime = created_field()


class IncidentAction(StrEnum):
    """The steps the schools' policies name for a breach of the code of conduct."""

    CAUTIONARY_NOTICE = "cautionary_notice"
    MEETING_INVITED = "meeting_invited"
    AUTHORITIES_CONTACTED = "authorities_contacted"
    LEGAL_ADVICE = "legal_advice"
    SITE_RESTRICTION = "site_restriction"
    REMOVED_FROM_GROUP = "removed_from_group"


INCIDENT_LABELS = {
    IncidentAction.CAUTIONARY_NOTICE: "Cautionary notice sent",
    IncidentAction.MEETING_INVITED: "Invited to a meeting",
    IncidentAction.AUTHORITIES_CONTACTED: "Authorities contacted (such as the police)",
    IncidentAction.LEGAL_ADVICE: "Legal advice sought",
    IncidentAction.SITE_RESTRICTION: "Restricted from the school site",
    IncidentAction.REMOVED_FROM_GROUP: "Removed from the group",
}


def incident_label(action: str) -> str:
    """An incident's action in words (the stored code itself if it is not one Classgate knows)."""
    try:
        return INCIDENT_LABELS[IncidentAction(action)]
    except ValueError:
        return action


class Incident(SQLModel, table=True):
    """One action the school took about a member, with when, who decided, and a note."""

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    membership_id: int = Field(foreign_key="membership.id", index=True)
    concern_id: int | None = Field(default=None, foreign_key="concern.id")
    action: str = Field(max_length=30)
    occurred_on: date = Field(sa_type=Date, nullable=False)
    decided_by: str = Field(max_length=120)
    note: str = Field(default="", max_length=2000)
    recorded_by_user_id: int = Field(foreign_key="user_account.id")
    created_at: datetime = created_field()
