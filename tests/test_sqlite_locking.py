"""SQLite's single writer: reads never queue for it, and writers wait their turn instead of failing."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest

from .conftest import text_of

pytestmark = pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="SQLite's write lock only")

ASH = "/join/year-2-ash"
DETAILS = {"name": "Sam Parent", "relationship": "parent", "email": "sam@example.com", "mobile": ""}


@pytest.fixture
def other_writer(app, school):
    """A second connection to the same file, as another worker process would have."""
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    connection = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    yield connection
    connection.close()


def test_checking_a_code_does_not_queue_behind_another_writer(browser, make_code, other_writer):
    code = make_code()
    other_writer.execute("BEGIN IMMEDIATE")  # another request is in the middle of writing
    try:
        response = browser.submit(ASH, {"code": code})
    finally:
        other_writer.execute("ROLLBACK")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{ASH}/details")


def test_a_writer_waits_for_the_lock_and_then_succeeds(browser, make_code, other_writer):
    assert browser.submit(ASH, {"code": make_code()}).status_code == 303
    other_writer.execute("BEGIN IMMEDIATE")
    # The other writer finishes a moment later; the parent's details must go in after it, not fail.
    release = threading.Timer(0.3, lambda: other_writer.execute("COMMIT"))
    release.start()
    try:
        response = browser.submit(f"{ASH}/details", DETAILS)
    finally:
        release.join()
    assert response.status_code in (302, 303), text_of(response)
    assert response.headers["Location"].endswith(f"{ASH}/check-email")


def test_a_details_form_with_a_mistake_is_answered_without_queueing_behind_a_writer(
    browser, make_code, other_writer
):
    """Checking a parent's details needs no write lock: only saving them does.

    Another request holds the lock; the form with a mistyped email comes back with its message
    at once, while that writer is still writing (it lets go ten seconds later, as a fallback).
    """
    assert browser.submit(ASH, {"code": make_code()}).status_code == 303
    other_writer.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        released.set()
        other_writer.execute("ROLLBACK")

    fallback = threading.Timer(10, release)
    fallback.start()
    try:
        response = browser.submit(f"{ASH}/details", {**DETAILS, "email": "sam@example"})
        answered_while_locked = not released.is_set()
    finally:
        fallback.cancel()
        if not released.is_set():
            release()
    assert response.status_code == 400
    assert "Enter an email address" in text_of(response)
    assert answered_while_locked
