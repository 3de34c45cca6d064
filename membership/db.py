"""Database engine and the per-request session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask, current_app, g, request
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def make_engine(url: str, pool_size: int = 5, max_overflow: int = 5) -> Engine:
    """Create an engine for SQLite or PostgreSQL with the settings Classgate relies on."""
    parsed = make_url(url)
    if parsed.drivername.startswith("postgresql"):
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, pool_recycle=1800
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE for writing sessions.

    A deferred transaction that reads and then writes can fail with "database is locked"
    when another process wrote in between; taking the write lock up front makes writers
    queue instead, which is what serialises ledger appends and one-time redemptions.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        immediate = connection.get_execution_options().get("classgate_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def engine() -> Engine:
    """The current app's engine."""
    return current_app.extensions["classgate_engine"]


def new_session(write: bool = False, bind: Engine | None = None) -> Session:
    """Open a session; a writing session takes SQLite's write lock when it begins."""
    bound = bind or engine()
    if write:
        bound = bound.execution_options(classgate_write=True)
    return Session(bound, expire_on_commit=False)


def get_session() -> Session:
    """The request's session, opened on first use; POSTs get a writing session."""
    if "db_session" not in g:
        view = current_app.view_functions.get(request.endpoint or "")
        writes = request.method not in READ_METHODS or getattr(view, "writes_on_get", False)
        g.db_session = new_session(write=writes)
    return g.db_session


def writes_on_get(view):
    """Mark a view whose GET changes the database (an email verification link, say)."""
    view.writes_on_get = True
    return view


@contextmanager
def session_scope(write: bool = True) -> Iterator[Session]:
    """A session for CLI commands and jobs: commit on success, roll back on error."""
    session = new_session(write=write)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    """Create the engine and close the request session after each request."""
    app.extensions["classgate_engine"] = make_engine(
        app.config["DATABASE_URL"], app.config["DB_POOL_SIZE"], app.config["DB_MAX_OVERFLOW"]
    )
    app.teardown_request(_close_session)
    app.teardown_appcontext(_close_session)
