"""Policy versions, the append-only acceptance ledger, and the mail outbox."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import DDL, Column, Date, Text, event
from sqlmodel import Field, SQLModel, UniqueConstraint

from .base import UTCDateTime, created_field, when_field


class DocumentKind(StrEnum):
    """The documents a school publishes."""

    CODE_OF_CONDUCT = "code_of_conduct"
    DATA_NOTICE = "data_notice"
    MODERATOR_NOTICE = "moderator_notice"


DOCUMENT_TITLES = {
    DocumentKind.CODE_OF_CONDUCT: "Class Group Code of Conduct",
    DocumentKind.DATA_NOTICE: "Data notice",
    DocumentKind.MODERATOR_NOTICE: "Moderator notice",
}


class PolicyVersion(SQLModel, table=True):
    """One published version of a school's document; never edited once published."""

    __tablename__ = "policy_version"
    __table_args__ = (UniqueConstraint("school_id", "kind", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    kind: str = Field(max_length=30)
    number: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    sha256: str = Field(max_length=64)
    published_at: datetime = created_field()
    review_due: date | None = Field(default=None, sa_type=Date, nullable=True)
    material: bool = Field(default=True)
    change_note: str = Field(default="", max_length=500)

    @property
    def title(self) -> str:
        """The document's name as shown to people."""
        return DOCUMENT_TITLES[DocumentKind(self.kind)]


class LedgerHead(SQLModel, table=True):
    """The newest entry of a school's chain; locked while a transaction writes its entries, so the chain never forks."""

    __tablename__ = "ledger_head"

    school_id: int = Field(foreign_key="school.id", primary_key=True)
    seq: int = Field(default=0)
    head_hash: str = Field(max_length=64)


class LedgerEntry(SQLModel, table=True):
    """An append-only, hash-chained record of something a person agreed to or a decision made."""

    __tablename__ = "ledger_entry"
    __table_args__ = (UniqueConstraint("school_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    seq: int
    created_at: datetime = created_field()
    action: str = Field(max_length=40)
    person_ref: str | None = Field(default=None, max_length=32, index=True)
    actor: str = Field(max_length=80)
    group_id: int | None = Field(default=None, index=True)
    child_id: int | None = None
    membership_id: int | None = Field(default=None, index=True)
    document_kind: str | None = Field(default=None, max_length=30)
    document_version: int | None = None
    document_version_id: int | None = None
    document_sha256: str | None = Field(default=None, max_length=64)
    statement: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    channel: str = Field(max_length=20)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)


class OutboxMessage(SQLModel, table=True):
    """An email waiting to be (or already) delivered; requests only ever insert these."""

    __tablename__ = "outbox_message"

    id: int | None = Field(default=None, primary_key=True)
    to_addr: str = Field(max_length=254)
    subject: str = Field(max_length=200)
    body_text: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(default="", max_length=40)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    # A message to someone else (a moderator) that names a parent: scrubbed once sent, if the
    # parent erases their details.
    about_person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    created_at: datetime = created_field()
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    claimed_until: datetime | None = when_field()
    sent_at: datetime | None = when_field(index=True)
    failed_at: datetime | None = when_field()
    last_error: str | None = Field(default=None, max_length=500)


# Database-level guards: the ledger and published policy texts refuse UPDATE and DELETE,
# whatever code (or person with a database shell) tries. The same statements are in the
# initial migration.
APPEND_ONLY_TABLES = ("ledger_entry", "policy_version")

SQLITE_GUARDS = [
    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
    for table in APPEND_ONLY_TABLES
    for verb in ("UPDATE", "DELETE")
]

POSTGRES_FUNCTION = """CREATE OR REPLACE FUNCTION classgate_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql"""

POSTGRES_GUARDS = [
    *[
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION classgate_append_only()"
        for table in APPEND_ONLY_TABLES
    ],
    *[
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION classgate_append_only()"
        for table in APPEND_ONLY_TABLES
    ],
]


def _attach_guards() -> None:
    # DDL() formats with %, so the function's own % placeholder is doubled.
    function = DDL(POSTGRES_FUNCTION.replace("%", "%%")).execute_if(dialect="postgresql")
    event.listen(SQLModel.metadata, "before_create", function)
    for model in (LedgerEntry, PolicyVersion):
        name = model.__tablename__
        for statement in SQLITE_GUARDS:
            if f" ON {name} " in statement:
                event.listen(model.__table__, "after_create", DDL(statement).execute_if(dialect="sqlite"))
        for statement in POSTGRES_GUARDS:
            if f" ON {name} " in statement:
                event.listen(model.__table__, "after_create", DDL(statement).execute_if(dialect="postgresql"))


_attach_guards()
