"""The Alembic migrations build exactly the schema the models describe, guards included."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

import membership.models  # noqa: F401 - registers every table on SQLModel.metadata
from membership.db import make_engine
from membership.models.records import APPEND_ONLY_TABLES

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TEST_DATABASE_URL")

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql", id="postgresql",
        marks=pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set"),
    ),
]


@pytest.fixture(params=DATABASES)
def empty_url(request, tmp_path) -> str:
    """An empty database with no tables at all (a fresh SQLite file, or the emptied PostgreSQL)."""
    if request.param == "postgresql":
        return request.getfixturevalue("database_url")  # TEST_DATABASE_URL, emptied
    return f"sqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture
def alembic_cfg(empty_url) -> Config:
    """Alembic's configuration, pointed at the empty database."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["url"] = empty_url
    return cfg


@pytest.fixture
def engine(empty_url) -> Iterator[Engine]:
    """An engine on the same database, for looking at what the migration built."""
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


def differences(engine: Engine) -> list:
    """What autogenerate would still change to make the database match the models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata)


def tables(engine: Engine) -> set[str]:
    """The tables in the database, apart from Alembic's own bookkeeping."""
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def triggers(engine: Engine) -> set[str]:
    """The names of the triggers in the database."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        else:
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        return set(connection.exec_driver_sql(query).scalars())


def expected_triggers(engine: Engine) -> set[str]:
    """The guards the models attach when tables are created directly (as the test suite does)."""
    if engine.dialect.name == "postgresql":
        return {f"{table}_{name}" for table in APPEND_ONLY_TABLES for name in ("append_only", "no_truncate")}
    return {f"{table}_no_{verb}" for table in APPEND_ONLY_TABLES for verb in ("update", "delete")}


def add_school_with_records(engine: Engine) -> None:
    """Insert a school, a published policy and one ledger entry with plain SQL."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO school (id, slug, name, concerns_email, created_at) "
            "VALUES (1, 'oak', 'Oak School', 'office@oak.example', CURRENT_TIMESTAMP)"
        )
        connection.exec_driver_sql(
            "INSERT INTO policy_version (school_id, kind, number, text, sha256, published_at, material, change_note) "
            "VALUES (1, 'code_of_conduct', 1, 'Be kind.', 'abc', CURRENT_TIMESTAMP, true, '')"
        )
        connection.exec_driver_sql(
            "INSERT INTO ledger_entry (school_id, seq, created_at, action, actor, channel, detail, prev_hash, "
            "entry_hash) VALUES (1, 1, CURRENT_TIMESTAMP, 'agree', 'parent', 'web', '{}', 'p', 'h')"
        )


def test_upgrade_on_an_empty_database_matches_the_models(alembic_cfg, engine) -> None:
    """An operator migrating a brand-new database gets every table the code expects, and nothing differs."""
    assert tables(engine) == set()
    command.upgrade(alembic_cfg, "head")
    assert tables(engine) == set(SQLModel.metadata.tables)
    assert differences(engine) == []


def test_upgrade_creates_the_append_only_guards(alembic_cfg, engine) -> None:
    """After migrating, nobody can edit or delete a ledger entry or a published policy, even with SQL."""
    command.upgrade(alembic_cfg, "head")
    assert triggers(engine) == expected_triggers(engine)
    add_school_with_records(engine)
    for statement in (
        "UPDATE ledger_entry SET action = 'decline'",
        "DELETE FROM ledger_entry",
        "UPDATE policy_version SET text = 'Be quiet.'",
        "DELETE FROM policy_version",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.exec_driver_sql(statement)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT action FROM ledger_entry").scalar_one() == "agree"
        assert connection.exec_driver_sql("SELECT text FROM policy_version").scalar_one() == "Be kind."


def test_downgrade_to_base_then_upgrade_again(alembic_cfg, engine) -> None:
    """Rolling the schema all the way back and forward again leaves a working, guarded database."""
    command.upgrade(alembic_cfg, "head")
    command.downgrade(alembic_cfg, "base")
    assert tables(engine) == set() and triggers(engine) == set()
    command.upgrade(alembic_cfg, "head")
    assert differences(engine) == []
    add_school_with_records(engine)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.exec_driver_sql("UPDATE ledger_entry SET statement = 'changed'")


def add_oak_and_year_3(connection) -> None:
    """A school and one group, written as SQL any revision since the first accepts."""
    connection.exec_driver_sql(
        "INSERT INTO school (id, slug, name, concerns_email, created_at) "
        "VALUES (1, 'oak', 'Oak School', 'office@oak.example', CURRENT_TIMESTAMP)"
    )
    connection.exec_driver_sql(
        "INSERT INTO class_group (id, school_id, slug, name, description, platform, chat_url, "
        "requires_approval, academic_year, created_at) "
        "VALUES (1, 1, 'y3', 'Year 3', '', 'whatsapp', '', false, '2026-27', CURRENT_TIMESTAMP)"
    )


def test_upgrade_keeps_the_data_of_a_school_already_using_classgate(alembic_cfg, engine) -> None:
    """A school on the first version upgrades in place: its accounts and moderators survive every later revision."""
    command.upgrade(alembic_cfg, "0001")
    with engine.begin() as connection:
        add_oak_and_year_3(connection)
        connection.exec_driver_sql(
            "INSERT INTO user_account (id, school_id, email, name, role, active, created_at) "
            "VALUES (1, 1, 'rep@oak.example', 'Rep', 'moderator', true, CURRENT_TIMESTAMP)"
        )
        connection.exec_driver_sql(
            "INSERT INTO group_moderator (group_id, user_id, appointed_at) VALUES (1, 1, CURRENT_TIMESTAMP)"
        )
    command.upgrade(alembic_cfg, "head")
    assert differences(engine) == []
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT email FROM user_account").scalars().all() == ["rep@oak.example"]
        assert connection.exec_driver_sql("SELECT user_id FROM group_moderator").scalars().all() == [1]


def test_upgrade_copies_each_members_name_for_the_records_list(alembic_cfg, engine) -> None:
    """Members already in a group get their name's list copy (lowercased, any alphabet); an erased one is marked."""
    command.upgrade(alembic_cfg, "0004")
    with engine.begin() as connection:
        add_oak_and_year_3(connection)
        for person_id, name in ((1, "'ŁUCJA Nowak'"), (2, "NULL")):
            connection.exec_driver_sql(
                f"INSERT INTO person (id, ref, name, created_at) VALUES ({person_id}, 'ref{person_id}', {name}, "
                "CURRENT_TIMESTAMP)"
            )
            connection.exec_driver_sql(
                "INSERT INTO membership (group_id, person_id, relationship, status, verified_by, holds_code_use, "
                f"needs_reagree, created_at, updated_at) VALUES (1, {person_id}, 'parent', 'approved', 'code', "
                "false, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
    command.upgrade(alembic_cfg, "head")
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT person_id, sort_name, name_erased FROM membership ORDER BY person_id"
        ).all()
    assert [tuple(row) for row in rows] == [(1, "łucja nowak", False), (2, None, True)]
