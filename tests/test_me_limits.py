"""Sign-in emails are rate limited per phone and per address; a limit gets the friendly 429 page."""

from __future__ import annotations

import pytest

from .conftest import outbox, text_of
from .test_me import EMAIL, ask_for_link, join


@pytest.fixture
def config(config):
    """Tight limits for these tests only (every test client shares one address)."""
    return {**config, "MAIL_LIMIT_PER_CLIENT": "4 per minute", "PARENT_LINK_LIMIT_PER_EMAIL": "2 per 15 minutes"}


def test_links_to_one_address_are_limited(make_browser, make_code, db):
    """A third link for one address within the window is refused with a 429, however it is typed."""
    join(make_browser(), db, make_code())
    statuses = [ask_for_link(make_browser(), typed).status_code for typed in (EMAIL, " SAM@example.com", EMAIL)]
    assert statuses == [303, 303, 429]
    assert len(outbox(db, to=EMAIL, kind="parent-sign-in")) == 2


def test_one_phone_asking_for_many_addresses_is_limited(make_browser, make_code, db):
    """Trying address after address from one place is stopped; the page says to wait."""
    join(make_browser(), db, make_code())
    phone = make_browser()
    statuses = [ask_for_link(phone, f"parent{n}@example.com").status_code for n in range(5)]
    assert statuses == [303, 303, 303, 303, 429]
    assert "Too many attempts" in text_of(phone.last)
    assert "Please wait a while and try again" in text_of(phone.last)
