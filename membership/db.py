"""Database engine and the per-request session."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask, current_app, g, request
from sqlalchemy import event, inspect, update
from sqlalchemy.engine import CursorResult, Engine, make_url
from sqlalchemy.sql import Executable
from sqlmodel import Session, create_engine

from . import writers
from .models import (
    CarerInvitation,
    Child,
    EnrolmentCode,
    Group,
    Invite,
    Membership,
    Person,
    PolicyVersion,
    School,
    User,
    sort_name,
)

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
BUSY_TIMEOUT_MS = 30000


def make_engine(url: str, pool_size: int = 5, max_overflow: int = 5) -> Engine:
    """Create an engine for SQLite or PostgreSQL with the settings Classgate relies on."""
    parsed = make_url(url)
    if parsed.drivername.startswith("postgresql"):
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, pool_recycle=1800
        )
    connect_args = {"check_same_thread": False, "timeout": 30}
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        factory = writers.connection_factory(parsed.database)
        if factory is not None:
            connect_args["factory"] = factory
    engine = create_engine(parsed, connect_args=connect_args)
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
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        if connection.get_execution_options().get("classgate_write", False):
            # Taken just before the transaction's first statement that is not BEFORE_WRITE_LOCK.
            connection.info[_LOCK_PENDING] = True
        else:
            # Straight to the driver, as BEGIN IMMEDIATE is: every read of every page begins here.
            connection.connection.dbapi_connection.execute("BEGIN")

    @event.listens_for(engine, "before_cursor_execute")
    def _take_write_lock(connection, _cursor, _statement, _parameters, context, _executemany) -> None:
        if connection.info.get(_LOCK_PENDING) and not (
            context is not None and context.execution_options.get(BEFORE_WRITE_LOCK, False)
        ):
            del connection.info[_LOCK_PENDING]
            _begin_immediate(connection.connection.dbapi_connection)

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _end(connection) -> None:
        connection.info.pop(_LOCK_PENDING, None)

    @event.listens_for(engine.pool, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        record.info.pop(_LOCK_PENDING, None)


# A writing transaction on SQLite takes the write lock (BEGIN IMMEDIATE) not when it begins but
# just before its first statement without this execution option. A statement with it runs
# before the lock, outside the transaction, and must be a read whose answer the writes do not
# depend on: the group a join page's URL names, read while a parent's details are checked, so
# that the other writers do not wait for the form's checking too. PostgreSQL ignores the option.
BEFORE_WRITE_LOCK = "classgate_before_write_lock"
_LOCK_PENDING = "classgate_write_lock_pending"


# Waiting for SQLite's write lock: first in the queue of Classgate's writers (membership.writers),
# which wakes a writer as the one ahead of it finishes; then, should a writer from outside the
# queue hold the lock, by trying again often and briefly. SQLite's own busy handler backs off to
# 100 ms sleeps, so one unlucky request would wait far longer than the writers ahead of it take.
WRITE_LOCK_POLL = (0.0005, 0.001, 0.002)
WRITE_LOCK_TIMEOUT = 30.0


def _begin_immediate(dbapi_connection) -> None:
    """BEGIN IMMEDIATE, after this connection's turn among the queued writers, retried on 'database
    is locked' at short intervals for up to WRITE_LOCK_TIMEOUT.
    """
    if isinstance(dbapi_connection, writers.QueuedConnection):
        dbapi_connection.wait_turn(WRITE_LOCK_TIMEOUT)
    cursor = dbapi_connection.cursor()
    began = False
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + WRITE_LOCK_TIMEOUT
        attempt = 0
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                began = True
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            pause = WRITE_LOCK_POLL[min(attempt, len(WRITE_LOCK_POLL) - 1)]
            time.sleep(pause * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret
            attempt += 1
    finally:
        if not began and isinstance(dbapi_connection, writers.QueuedConnection):
            dbapi_connection.hand_on()  # no transaction began, so none will end and hand the turn on
        # Statements inside the transaction keep SQLite's own patience (a checkpoint, say).
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()


def engine() -> Engine:
    """The current app's engine."""
    return current_app.extensions["classgate_engine"]


def writing_engine(bound: Engine) -> Engine:
    """The engine's writing variant, whose transactions take SQLite's write lock when they begin."""
    return bound.execution_options(classgate_write=True)


def reading_engine(bound: Engine) -> Engine:
    """The engine's variant for requests that only read, which refuses to write.

    On PostgreSQL it runs each statement on its own (autocommit). Classgate reads at READ
    COMMITTED, where every statement sees the latest committed data whether or not a transaction
    is open, so a page reads exactly what it read before, without a BEGIN and a ROLLBACK around
    it; and psycopg forgets its prepared statements at every ROLLBACK, so without them the
    statements a page runs again and again stay prepared on the connection. A long read that
    streams (the export, the ledger check) needs a transaction for its cursor and opens its own
    session with new_session().

    A reading request that writes is a view missing its writes_on_get mark: on PostgreSQL its
    statements would not commit together, so it is refused on every database, where the tests see it.
    """
    if bound.dialect.name == "postgresql":
        reader = bound.execution_options(isolation_level="AUTOCOMMIT", classgate_read=True)
    else:
        reader = bound.execution_options(classgate_read=True)
    event.listen(reader, "before_cursor_execute", _refuse_writes)
    return reader


def _refuse_writes(_conn, _cursor, statement, _parameters, context, _executemany) -> None:
    if context is not None and (context.isinsert or context.isupdate or context.isdelete):
        raise ReadOnlyRequestError(f"a request that only reads tried to write: {statement.split(None, 3)[:3]}")


class ReadOnlyRequestError(RuntimeError):
    """A view that reads on GET (or is marked reads_on_post) ran an INSERT, UPDATE or DELETE."""


def new_session(write: bool = False, bind: Engine | None = None) -> Session:
    """Open a session in one transaction; a writing session takes SQLite's write lock when it begins."""
    bound = bind or engine()
    if write:
        bound = current_app.extensions["classgate_writer"] if bind is None else writing_engine(bound)
    return Session(bound, expire_on_commit=False)


def get_session() -> Session:
    """The request's session, opened on first use; POSTs get a writing session unless marked reads_on_post.

    A reading request's session is reading_engine's: it may not write.
    """
    if "db_session" not in g:
        view = current_app.view_functions.get(request.endpoint or "")
        if request.method in READ_METHODS:
            writes = getattr(view, "writes_on_get", False)
        else:
            writes = not getattr(view, "reads_on_post", False)
        if writes:
            g.db_session = new_session(write=True)
        else:
            g.db_session = Session(current_app.extensions["classgate_reader"], expire_on_commit=False)
    return g.db_session


def writes_on_get(view):
    """Mark a view whose GET changes the database (an email verification link, say)."""
    view.writes_on_get = True
    return view


def reads_on_post(view):
    """Mark a view whose POST only reads (checking a code): it need not queue for SQLite's write lock."""
    view.reads_on_post = True
    return view


def write_rows(session: Session, statement: Executable, params: dict) -> CursorResult:
    """Run a plain INSERT or UPDATE in the session's transaction, without flushing the session first.

    Session.execute writes every pending change before each statement it runs. A statement that
    only names rows already written (by their ids) does not need that, and an agreement, which
    revokes and issues an invite and queues its email while moving its membership on, would
    otherwise write the membership again before each of them.
    """
    return session.connection().execute(statement, params)


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


# The rows a request works with, held for the session's life. SQLAlchemy's identity map holds
# objects weakly, so a row one function loaded and let go of is read again by the next function
# that asks for it by id (a parent's person row was read three times while agreeing). Streamed
# rows (ledger entries, outbox batches) are not held: an export must not keep 100,000 of them.
HELD = (CarerInvitation, Child, EnrolmentCode, Group, Invite, Membership, Person, PolicyVersion, School, User)


@event.listens_for(Session, "loaded_as_persistent")
@event.listens_for(Session, "pending_to_persistent")
def _hold(session: Session, instance) -> None:
    """Keep a strong reference to a row of the kinds a request uses again, until the session goes."""
    if isinstance(instance, HELD):
        session.info.setdefault("classgate_held", []).append(instance)


@event.listens_for(Session, "before_flush")
def _keep_sort_names(session: Session, _context, _instances) -> None:
    """Keep each membership's copy of its person's name (for ordering and searching lists) in step.

    A new membership takes its person's name; a person whose name changes (erasure blanks it)
    passes the change to all their memberships. Both happen in the flush that writes the change.
    """
    for obj in session.new:
        if isinstance(obj, Membership) and obj.sort_name is None and not obj.name_erased:
            person = session.get(Person, obj.person_id) if obj.person_id else None
            if person is not None:
                obj.sort_name, obj.name_erased = sort_name(person.name), person.name is None
    for obj in session.dirty:
        if isinstance(obj, Person) and obj.id is not None and inspect(obj).attrs.name.history.has_changes():
            session.connection().execute(
                update(Membership.__table__)
                .where(Membership.__table__.c.person_id == obj.id)
                .values(sort_name=sort_name(obj.name), name_erased=obj.name is None)
            )


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    """Create the engine and close the request session after each request."""
    bound = make_engine(app.config["DATABASE_URL"], app.config["DB_POOL_SIZE"], app.config["DB_MAX_OVERFLOW"])
    app.extensions["classgate_engine"] = bound
    app.extensions["classgate_writer"] = writing_engine(bound)
    app.extensions["classgate_reader"] = reading_engine(bound)
    app.teardown_request(_close_session)
    app.teardown_appcontext(_close_session)
