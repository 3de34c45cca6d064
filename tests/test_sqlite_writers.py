"""SQLite's writers queue for their turn: a waiting writer is woken as the one ahead finishes, and
every way a transaction ends (commit, rollback, close, a BEGIN that never happened) lets the next go.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from membership import db
from membership.writers import QueuedConnection, connection_factory

pytestmark = pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="SQLite's writers only")

ASH = "/join/year-2-ash"
DETAILS = {"name": "Sam Parent", "relationship": "parent", "email": "sam@example.com", "mobile": ""}


@pytest.fixture
def database(tmp_path) -> str:
    path = str(tmp_path / "queue.db")
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)")
    return path


def connect(factory: type[QueuedConnection], path: str) -> QueuedConnection:
    return sqlite3.connect(path, factory=factory, isolation_level=None, check_same_thread=False)


def begin(connection: QueuedConnection) -> None:
    """What Classgate does to begin a writing transaction."""
    db._begin_immediate(connection)


def second_writer(factory, path: str, events: list[str], done: threading.Event) -> threading.Thread:
    """Another request's writer, on another thread: it notes when its transaction began, and how
    many times it asked SQLite for the lock (once, when it waited its turn in the queue).
    """

    def write() -> None:
        connection = connect(factory, path)
        tries = []
        connection.set_trace_callback(lambda sql: tries.append(sql) if sql == "BEGIN IMMEDIATE" else None)
        begin(connection)
        events.append("second began")
        events.append(f"tries {len(tries)}")
        connection.execute("INSERT INTO note (body) VALUES ('second')")
        connection.commit()
        connection.close()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    return thread


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
def test_a_waiting_writer_goes_as_soon_as_the_one_ahead_ends(database, ending):
    factory = connection_factory(database)
    first = connect(factory, database)
    begin(first)
    first.execute("INSERT INTO note (body) VALUES ('first')")
    events: list[str] = []
    done = threading.Event()
    thread = second_writer(factory, database, events, done)
    time.sleep(0.2)
    assert events == []  # queued behind the first, not failing with "database is locked"
    events.append(f"first {ending}")
    getattr(first, ending)()
    assert done.wait(10), "the second writer never got its turn"
    thread.join()
    assert events == [f"first {ending}", "second began", "tries 1"]
    with sqlite3.connect(database) as reader:
        bodies = [row[0] for row in reader.execute("SELECT body FROM note ORDER BY id")]
    assert bodies == (["first", "second"] if ending == "commit" else ["second"])
    first.close()


def test_the_queue_holds_across_processes(database):
    """Another worker process's writer waits for this one's turn to end."""
    factory = connection_factory(database)
    first = connect(factory, database)
    begin(first)
    context = multiprocessing.get_context("spawn")  # a fresh process: SQLite must not cross a fork
    began = context.Event()
    child = context.Process(target=_write_in_a_child, args=(database, began))
    child.start()
    try:
        assert not began.wait(0.5)  # waiting for the turn held here
        first.commit()
        assert began.wait(10), "the other process never got its turn"
    finally:
        child.join(10)
        first.close()
    assert child.exitcode == 0


def _write_in_a_child(path: str, began) -> None:
    connection = connect(connection_factory(path), path)
    begin(connection)
    began.set()
    connection.execute("INSERT INTO note (body) VALUES ('child')")
    connection.commit()
    connection.close()


def test_a_writer_that_never_began_hands_the_turn_on(database, monkeypatch):
    """A writer from outside the queue held SQLite's lock past the time limit: the turn is not kept."""
    monkeypatch.setattr(db, "WRITE_LOCK_TIMEOUT", 0.2)
    outsider = sqlite3.connect(database, isolation_level=None)
    outsider.execute("BEGIN IMMEDIATE")
    factory = connection_factory(database)
    connection = connect(factory, database)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin(connection)
    assert not connection.holding
    outsider.execute("ROLLBACK")
    outsider.close()
    events: list[str] = []
    done = threading.Event()
    second_writer(factory, database, events, done).join(10)
    assert events == ["second began", "tries 1"]
    connection.close()


def test_a_second_connection_on_the_same_thread_does_not_wait_for_itself(database):
    """The queue is not re-entered: the thread's second writer tries SQLite's lock as before."""
    factory = connection_factory(database)
    first = connect(factory, database)
    begin(first)
    second = connect(factory, database)
    second.wait_turn(timeout=5)
    assert first.holding and not second.holding
    first.commit()
    begin(second)
    assert second.holding
    second.rollback()
    first.close()
    second.close()


def test_a_request_that_failed_mid_write_lets_the_next_parent_in(app, browser, make_code, monkeypatch):
    """The details step blows up after its first write; the next parent's details still go in."""
    from membership import journey

    assert browser.submit(ASH, {"code": make_code()}).status_code == 303

    def broken(*args, **kwargs):
        raise RuntimeError("the mail queue is broken")

    monkeypatch.setattr(journey, "send_verification", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert browser.submit(f"{ASH}/details", DETAILS).status_code == 500
    monkeypatch.undo()
    outcome: list[int] = []
    worker = threading.Thread(target=lambda: outcome.append(
        browser.submit(f"{ASH}/details", DETAILS).status_code))
    worker.start()
    worker.join(20)
    assert outcome == [302]
    with app.extensions["classgate_engine"].connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM person WHERE email = 'sam@example.com'")).scalar() == 1


def test_a_queue_that_goes_closes_its_file(database):
    """Every app (and every test) builds an engine with its own queue; none may keep a descriptor open."""
    import gc

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.collect()
    before = descriptors()
    for _ in range(20):
        connection = connect(connection_factory(database), database)
        begin(connection)
        connection.commit()
        connection.close()
        del connection
    gc.collect()
    assert descriptors() == before
