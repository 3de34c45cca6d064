"""Alembic environment: the database comes from DATABASE_URL, the schema from the SQLModel tables."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import membership.models  # noqa: F401 - registers every table on SQLModel.metadata
from membership.config import from_env
from membership.db import make_engine

target_metadata = SQLModel.metadata


def _url() -> str:
    return context.config.attributes.get("url") or from_env()["DATABASE_URL"]


def run_migrations_offline() -> None:
    """Emit SQL without a database connection."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations against the configured database."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url(), pool_size=1, max_overflow=0)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite alters a table by copying it and dropping the old one, which enforced foreign
        # keys refuse once other tables point at it. The pragma only works outside a
        # transaction, so it goes straight to the driver before anything begins.
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows pointing at missing rows: {broken[:5]}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
