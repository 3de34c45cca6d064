"""The databases a run uses: SQLite files in the run's temp folder, and one PostgreSQL database, reset each run."""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from .cpu import child_pids, parent_pid, process_seconds

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/cg_bench"


@dataclass(frozen=True)
class Backend:
    """One kind of database: where Classgate's and the SQLModel baseline's data go."""

    name: str  # "sqlite" or "postgresql"
    workdir: Path
    postgres_url: str = ""

    @property
    def classgate_url(self) -> str:
        """Classgate's database."""
        return self.postgres_url or f"sqlite:///{self.workdir / 'classgate.db'}"

    @property
    def baseline_url(self) -> str:
        """The minimal SQLModel app's database (on PostgreSQL the same one: its table sits beside Classgate's)."""
        return self.postgres_url or f"sqlite:///{self.workdir / 'minimal.db'}"

    def reset(self) -> None:
        """Start from nothing: drop and recreate PostgreSQL's public schema (SQLite files are new per run)."""
        if self.postgres_url:
            reset_schema(self.postgres_url)

    def analyze(self) -> None:
        """Refresh PostgreSQL's planner statistics after a bulk load, as autovacuum soon would.

        SQLite keeps none unless the application runs ANALYZE, which Classgate does not: left alone.
        """
        if self.postgres_url:
            analyze_database(self.postgres_url)

    def settle(self) -> None:
        """Before a load run on PostgreSQL: vacuum, analyze and checkpoint what the runs before it wrote.

        Otherwise the run after Classgate's journeys (the baseline's second) would share the machine
        with autovacuum and the checkpointer cleaning up after them. SQLite needs nothing: each app
        has its own file. Without the right to CHECKPOINT, the vacuum alone is done.
        """
        if not self.postgres_url:
            return
        with psycopg.connect(self.postgres_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute("VACUUM ANALYZE")
            try:
                connection.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                pass

    def version(self) -> str:
        """The database server's version, as it reports it."""
        if not self.postgres_url:
            return f"SQLite {sqlite3.sqlite_version}"
        with psycopg.connect(self.postgres_url, connect_timeout=5) as connection:
            return "PostgreSQL " + str(connection.execute("SHOW server_version").fetchone()[0])


def analyze_database(url: str) -> None:
    """ANALYZE the whole database: fresh planner statistics."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        connection.execute("ANALYZE")


def postgres_seconds(url: str) -> float:
    """CPU-seconds used so far by the whole PostgreSQL server on this machine (0 if it runs elsewhere).

    Its live processes, and through the postmaster's own count the backends that have exited: an
    app's worker recycled during a run takes its connections' backends with it, and their CPU must
    not vanish from the figure. Every database and background process on the server is included.
    """
    postmaster = _postmaster(url)
    if postmaster is None:
        return 0.0
    return process_seconds([postmaster], reaped_children=True) + process_seconds(child_pids(postmaster))


@functools.cache
def _postmaster(url: str) -> int | None:
    """The PID of the postmaster serving this URL, if it runs on this machine."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        backend = connection.info.backend_pid
        postmaster = parent_pid(backend)
    return postmaster


def postgres_answers(url: str) -> bool:
    """True when a PostgreSQL server answers at this URL's host (the database itself may not exist yet)."""
    try:
        psycopg.connect(_maintenance_url(url), connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def ensure_database(url: str) -> None:
    """Create the URL's database if it is missing (only that one: others on the server are not touched)."""
    name = make_url(url).database
    with psycopg.connect(_maintenance_url(url), autocommit=True, connect_timeout=5) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def reset_schema(url: str) -> None:
    """Drop everything in the database's public schema (tables, triggers, functions) and recreate it empty."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")


def _maintenance_url(url: str) -> str:
    """The same server's `postgres` database, to check it answers and to create ours."""
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)
