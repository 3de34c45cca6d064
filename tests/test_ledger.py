"""The acceptance ledger: a per-school hash chain the database will not let anyone rewrite."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from membership import ledger, schools
from membership.db import session_scope
from membership.models import LedgerEntry, LedgerHead, PolicyVersion, School

OTHER_SLUG = "rowan-academy"


def engine_of(app) -> Engine:
    """The app's database engine, as someone with a database shell would use it."""
    return app.extensions["classgate_engine"]


def full_journey(journey) -> None:
    """A parent joins the open group and opens the chat link."""
    agreed = journey.through_agree()
    assert agreed.status_code == 303
    opened = journey.browser.submit(agreed.headers["Location"])
    assert opened.status_code == 303


def entries(db, school_id: int) -> list[LedgerEntry]:
    """A school's ledger, oldest first."""
    db.commit()
    return list(db.exec(select(LedgerEntry).where(LedgerEntry.school_id == school_id).order_by(LedgerEntry.seq)))


def school_id(db, slug: str = "elm-primary") -> int:
    """A school's id by slug."""
    db.commit()
    return db.exec(select(School.id).where(School.slug == slug)).one()


def other_school_with_entries(count: int = 3) -> None:
    """A second school whose chain nobody touches."""
    with session_scope() as session:
        other = schools.create_school(session, OTHER_SLUG, "Rowan Academy", "office@rowan.example")
        for _ in range(count):
            ledger.append(session, other.id, "agree", actor="staff:test", channel="cli", statement="I agree")


def other_school_entries(session) -> tuple[School, list[LedgerEntry]]:
    """The second school and its ledger, oldest first."""
    school = schools.school_by_slug(session, OTHER_SLUG)
    rows = session.exec(select(LedgerEntry).where(LedgerEntry.school_id == school.id).order_by(LedgerEntry.seq))
    return school, list(rows)


def run_sql(app, *statements: str) -> None:
    """Run raw SQL in one transaction, bypassing the application."""
    with engine_of(app).begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def drop_guard(app, verb: str) -> str:
    """Switch off the ledger's guard as an attacker with a database shell would."""
    if engine_of(app).dialect.name == "postgresql":
        return "ALTER TABLE ledger_entry DISABLE TRIGGER ledger_entry_append_only"
    return f"DROP TRIGGER ledger_entry_no_{verb}"


def verify_cli(app, *args: str):
    """Run `flask --app app ledger verify` as the operator would."""
    return app.test_cli_runner().invoke(args=["ledger", "verify", *args])


def test_entries_chain_one_after_another(journey, db) -> None:
    """After a parent's whole journey, every entry points at the hash of the one before it."""
    full_journey(journey)
    rows = entries(db, school_id(db))
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    assert len(rows) >= 7
    assert rows[0].prev_hash == ledger.GENESIS
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.prev_hash == before.entry_hash
    for row in rows:
        assert row.entry_hash == ledger.compute_hash(row.prev_hash, row)
    head = db.get(LedgerHead, school_id(db))
    assert (head.seq, head.head_hash) == (rows[-1].seq, rows[-1].entry_hash)
    result = ledger.verify(db, school_id(db))
    assert result.ok and result.entries == len(rows) and result.head_hash == rows[-1].entry_hash


def test_ledger_names_people_only_by_reference(journey, db) -> None:
    """The parent's name, email and mobile never appear in the ledger, so erasing them cannot break it."""
    full_journey(journey)
    text = " ".join(ledger.canonical_json(row) for row in entries(db, school_id(db)))
    for personal in ("Sam Parent", "sam@example.com", "+447911123456", "07911 123456"):
        assert personal not in text


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entry SET statement = 'I agree to nothing'",
        "UPDATE ledger_entry SET action = 'decline' WHERE seq = 1",
        "DELETE FROM ledger_entry",
        "DELETE FROM ledger_entry WHERE seq = (SELECT MAX(seq) FROM ledger_entry)",
    ],
)
def test_database_refuses_to_change_ledger_entries(app, journey, db, statement: str) -> None:
    """Even raw SQL through the database cannot rewrite or remove what a parent agreed to."""
    full_journey(journey)
    before = [ledger.canonical_json(row) + row.entry_hash for row in entries(db, school_id(db))]
    with pytest.raises(DBAPIError, match="append-only"):
        run_sql(app, statement)
    after = [ledger.canonical_json(row) + row.entry_hash for row in entries(db, school_id(db))]
    assert after == before
    assert ledger.verify(db, school_id(db)).ok


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE policy_version SET text = 'Anything goes.'",
        "UPDATE policy_version SET number = 7 WHERE kind = 'code_of_conduct'",
        "DELETE FROM policy_version",
    ],
)
def test_database_refuses_to_change_published_policies(app, school, db, statement: str) -> None:
    """A published code of conduct stays exactly as parents saw it, whoever tries to edit it."""
    before = [(v.id, v.number, v.text, v.sha256) for v in db.exec(select(PolicyVersion).order_by(PolicyVersion.id))]
    assert len(before) == 3
    with pytest.raises(DBAPIError, match="append-only"):
        run_sql(app, statement)
    db.commit()
    after = [(v.id, v.number, v.text, v.sha256) for v in db.exec(select(PolicyVersion).order_by(PolicyVersion.id))]
    assert after == before


def test_postgres_refuses_truncate(app, journey, db) -> None:
    """On PostgreSQL, TRUNCATE (which skips row triggers) is refused too."""
    if engine_of(app).dialect.name != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL only")
    full_journey(journey)
    count = len(entries(db, school_id(db)))
    db.commit()  # TRUNCATE waits for every open transaction on the table, including this one
    for table in ("ledger_entry", "policy_version"):
        with pytest.raises(DBAPIError, match="append-only"):
            # A lock timeout turns a forgotten open transaction into a failure, not a hung run.
            run_sql(app, "SET LOCAL lock_timeout = '10s'", f"TRUNCATE {table} CASCADE")
    assert len(entries(db, school_id(db))) == count


def test_verify_reports_intact_chains(app, journey) -> None:
    """`ledger verify` says every school's chain is intact and exits 0."""
    full_journey(journey)
    other_school_with_entries()
    result = verify_cli(app)
    assert result.exit_code == 0, result.output
    assert "elm-primary: intact, 7 entries" in result.output
    assert f"{OTHER_SLUG}: intact, 3 entries" in result.output


@pytest.mark.parametrize("column", ["statement", "action"])
def test_edit_behind_the_apps_back_is_named(app, journey, db, column: str) -> None:
    """Someone who disables the guard and rewrites one entry is caught: verify exits 1 naming that entry."""
    full_journey(journey)
    other_school_with_entries()
    elm = school_id(db)
    agree = next(row for row in entries(db, elm) if row.action == "agree")
    new_value = "I agree to nothing" if column == "statement" else "decline"
    run_sql(
        app,
        drop_guard(app, "update"),
        f"UPDATE ledger_entry SET {column} = '{new_value}' WHERE id = {agree.id}",
    )
    assert getattr(entries(db, elm)[agree.seq - 1], column) == new_value  # the edit really happened

    result = verify_cli(app)
    assert result.exit_code == 1
    assert f"elm-primary: BROKEN at entry {agree.seq} " in result.output
    assert "changed after it was written" in result.output
    assert f"{OTHER_SLUG}: intact, 3 entries" in result.output

    only_other = verify_cli(app, "--school", OTHER_SLUG)
    assert only_other.exit_code == 0 and "BROKEN" not in only_other.output
    only_elm = verify_cli(app, "--school", "elm-primary")
    assert only_elm.exit_code == 1 and f"entry {agree.seq} " in only_elm.output

    result = ledger.verify(db, elm)
    assert not result.ok and result.broken_seq == agree.seq and result.broken_id == agree.id


def test_rehashing_an_edited_entry_breaks_the_next_one(app, journey, db) -> None:
    """Even recomputing the edited entry's own hash is caught, because the next entry still points at the old one."""
    full_journey(journey)
    elm = school_id(db)
    rows = entries(db, elm)
    target = rows[2]
    target.statement = "I agree to nothing"
    forged = ledger.compute_hash(target.prev_hash, target)
    db.rollback()
    run_sql(
        app,
        drop_guard(app, "update"),
        f"UPDATE ledger_entry SET statement = 'I agree to nothing', entry_hash = '{forged}' WHERE id = {target.id}",
    )
    result = verify_cli(app)
    assert result.exit_code == 1
    assert f"elm-primary: BROKEN at entry {target.seq + 1} " in result.output


def test_deleting_the_last_entry_is_caught_by_the_head(app, journey, db) -> None:
    """Quietly removing the newest entry leaves a chain that looks whole but no longer reaches the head."""
    full_journey(journey)
    other_school_with_entries()
    elm = school_id(db)
    last = entries(db, elm)[-1]
    last_id, last_seq = last.id, last.seq
    run_sql(app, drop_guard(app, "delete"), f"DELETE FROM ledger_entry WHERE id = {last_id}")
    assert len(entries(db, elm)) == last_seq - 1

    result = verify_cli(app)
    assert result.exit_code == 1
    assert "elm-primary: BROKEN at chain head" in result.output
    assert f"{OTHER_SLUG}: intact" in result.output


def test_deleting_a_middle_entry_names_the_gap(app, journey, db) -> None:
    """Removing an entry from the middle is reported at the entry after the gap."""
    full_journey(journey)
    elm = school_id(db)
    middle = entries(db, elm)[3]
    middle_id, middle_seq = middle.id, middle.seq
    run_sql(app, drop_guard(app, "delete"), f"DELETE FROM ledger_entry WHERE id = {middle_id}")
    result = verify_cli(app)
    assert result.exit_code == 1
    assert f"BROKEN at entry {middle_seq + 1} " in result.output
    assert "missing" in result.output


def test_a_change_rolled_back_leaves_no_entry(app) -> None:
    """Entries are written with the change they record: a change rolled back records nothing, even later."""
    other_school_with_entries(2)
    with session_scope() as session:
        school = schools.school_by_slug(session, OTHER_SLUG)
        ledger.append(session, school.id, "agree", actor="staff:test", channel="cli", statement="never kept")
        session.rollback()
        # The same session goes on to a change that commits: only that change's entry is written.
        ledger.append(session, school.id, "agree", actor="staff:test", channel="cli", statement="kept")
    with session_scope() as session:
        school, rows = other_school_entries(session)
        assert [row.statement for row in rows] == ["I agree", "I agree", "kept"]
        assert ledger.verify(session, school.id).ok


def test_entries_in_a_savepoint_go_with_it(app) -> None:
    """An entry made inside a savepoint that is rolled back is gone; one in a savepoint kept is chained in order."""
    other_school_with_entries(1)
    with session_scope() as session:
        school = schools.school_by_slug(session, OTHER_SLUG)
        ledger.append(session, school.id, "agree", actor="staff:test", channel="cli", statement="before")
        savepoint = session.begin_nested()
        ledger.append(session, school.id, "agree", actor="staff:test", channel="cli", statement="rolled back")
        savepoint.rollback()
        with session.begin_nested():
            ledger.append(session, school.id, "agree", actor="staff:test", channel="cli", statement="kept")
        ledger.append(session, school.id, "agree", actor="staff:test", channel="cli", statement="after")
    with session_scope() as session:
        school, rows = other_school_entries(session)
        # The savepoint's entry is written when it is made; the others when the transaction commits.
        assert [row.statement for row in rows] == ["I agree", "kept", "before", "after"]
        assert [row.seq for row in rows] == [1, 2, 3, 4]
        verified = ledger.verify(session, school.id)
        assert verified.ok and verified.entries == 4
