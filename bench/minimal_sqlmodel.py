"""Baseline 2: Flask + SQLModel doing one indexed SELECT and one INSERT per request.

`BENCH_DATABASE_URL=… gunicorn -c gunicorn.conf.py bench.minimal_sqlmodel:app`. The engine is set
up as Classgate's is (SQLite: WAL, synchronous=NORMAL, a busy timeout and BEGIN IMMEDIATE for the
writing transaction; PostgreSQL: psycopg with a pool of 5 + 5 and pre-ping), so the gap between the
two is Classgate's own work. The table lives in a registry of its own, never in Classgate's metadata.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from flask import Flask, jsonify
from sqlalchemy import Engine, Index, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, create_engine, select

SEED_ROWS = 10_000
KEYS = 1000


class BenchModel(SQLModel, registry=registry()):
    """Base for the baseline's tables, kept apart from Classgate's SQLModel.metadata."""


class Visit(BenchModel, table=True):
    """One request's visit to a key."""

    __tablename__ = "bench_visit"
    # The request's SELECT (a key's latest visit) is read from this index alone, on both databases,
    # however many visits the table holds. With an index on the key only, PostgreSQL chose to walk
    # the primary key backwards and filter, reading thousands of rows a request by the second run.
    __table_args__ = (Index("ix_bench_visit_key_id", "key", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=32)
    created_at: datetime


def make_engine(url: str) -> Engine:
    """An engine configured as Classgate configures its own."""
    parsed = make_url(url)
    if parsed.drivername.startswith("postgresql"):
        return create_engine(parsed.set(drivername="postgresql+psycopg"), pool_size=5, max_overflow=5,
                             pool_pre_ping=True)
    engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", "synchronous=NORMAL"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def prepare(url: str, rows: int = SEED_ROWS) -> None:
    """Create the table and seed it, before gunicorn starts (so workers never race to create it)."""
    engine = make_engine(url)
    BenchModel.metadata.drop_all(engine)
    BenchModel.metadata.create_all(engine)
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add_all(Visit(key=f"k{n % KEYS}", created_at=now) for n in range(rows))
        session.commit()
    engine.dispose()


def create_app() -> Flask:
    """The baseline app on BENCH_DATABASE_URL."""
    app = Flask(__name__)
    engine = make_engine(os.environ["BENCH_DATABASE_URL"])

    @app.get("/healthz")
    def healthz() -> str:
        """Up."""
        return "ok"

    @app.post("/visit/<key>")
    def visit(key: str):
        """The key's latest visit (an indexed SELECT), then a new one (an INSERT), in one transaction."""
        with Session(engine) as session:
            last = session.exec(select(Visit).where(Visit.key == key).order_by(Visit.id.desc()).limit(1)).first()
            previous = last.id if last else None
            session.add(Visit(key=key, created_at=datetime.now(UTC)))
            session.commit()
        return jsonify(key=key, previous=previous)

    return app


app = create_app() if "BENCH_DATABASE_URL" in os.environ else None
