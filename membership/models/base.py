"""Column types and helpers shared by every table."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python, on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Refuse naive datetimes; store UTC (SQLite keeps no offset, so drop it there)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a timezone-aware one is required")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Hand back an aware UTC datetime whatever the database returned."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def created_field() -> Any:
    """A non-null creation timestamp defaulting to now."""
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def when_field(index: bool = False) -> Any:
    """An optional timestamp."""
    return Field(default=None, sa_type=UTCDateTime, nullable=True, index=index)


def read_view(model: type) -> type:
    """A read-only stand-in for one of a model's rows, for pages that only show it: a named tuple of
    its columns, with the model's properties.

    Loading rows as these costs a fraction of loading model instances (no session bookkeeping, no
    change tracking), which counts on the pages every parent opens. Nothing can be changed or saved
    through one: code that changes the row loads the model.
    """
    columns = [column.key for column in model.__table__.columns]
    base = namedtuple(f"{model.__name__}View", columns)  # noqa: PYI024 - built from the table
    properties = {name: value for name, value in vars(model).items() if isinstance(value, property)}
    return type(base.__name__, (base,), {"__slots__": (), "__doc__": f"A {model.__name__} as read.", **properties})


def read_views(row: Sequence | None, *views: type) -> list | None:
    """Cut a plain row holding several tables' columns, in order, into their read views.

    A select of models run on the session's connection (not the session) returns such rows. A
    table outer-joined and not found gives None; the whole row being None gives None.
    """
    if row is None:
        return None
    found, start = [], 0
    for view in views:
        values = row[start : start + len(view._fields)]
        found.append(view._make(values) if any(value is not None for value in values) else None)
        start += len(view._fields)
    return found
