"""Fixtures for the browser tests: Chromium, Classgate served by gunicorn on the test's database, and tabs.

The tests are skipped, with the reason, when Playwright or Chromium (/usr/bin/chromium, Debian's
`chromium` package) is missing. Each runs twice: with JavaScript, and in a browser that has it turned off.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from ..conftest import DETAILS, link_in, outbox
from ..live_server import LiveServer
from .screens import ARTIFACTS, CHROMIUM, PHONE, Screen, missing, slug

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

HERE = Path(__file__).resolve().parent
# Playwright waits up to this long for a page or an element; a healthy page takes well under a second.
TIMEOUT_MS = 15_000
# The chat platform's address: the browser is answered by a stand-in page instead of the real site.
CHAT_SITE = "https://chat.whatsapp.com/*"
CHAT_PAGE = b"<!doctype html><html lang='en'><title>WhatsApp</title><h1>WhatsApp group invitation</h1></html>"
REPORT = pytest.StashKey[dict]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the browser tests, and skip them with the reason when they cannot run here."""
    reason = missing()
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {reason}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the test, so a fixture can tell that the test failed."""
    report = yield
    item.stash.setdefault(REPORT, {})[report.when] = report
    return report


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright, shared by the browser tests and closed after the last of them."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def server(app, school, database_url, tmp_path) -> Iterator[LiveServer]:
    """gunicorn serving Classgate from the database the fixtures arrange data in; no errors in its log."""
    live = LiveServer(database_url, tmp_path, workers=1, threads=4)
    live.start()
    yield live
    live.stop()
    assert live.errors() == [], live.log()


@pytest.fixture(params=[True, False], ids=["js", "no-js"])
def javascript(request) -> bool:
    """Whether the browser runs JavaScript: every journey must work without it."""
    return request.param


def answer_for_the_chat(context: BrowserContext, page: Page) -> None:
    """Answer the tab's requests to the chat platform with a stand-in page, so the tests never leave the machine.

    Playwright's own routing does not see the target of a redirect, and the chat is reached by one
    (the invite's POST answers 303), so this intercepts at Chromium's network layer instead.
    """
    cdp = context.new_cdp_session(page)
    body = base64.b64encode(CHAT_PAGE).decode()

    def fulfil(event: dict) -> None:
        """Answer one paused request."""
        cdp.send("Fetch.fulfillRequest", {
            "requestId": event["requestId"], "responseCode": 200, "body": body,
            "responseHeaders": [{"name": "Content-Type", "value": "text/html; charset=utf-8"}],
        })

    cdp.on("Fetch.requestPaused", fulfil)
    cdp.send("Fetch.enable", {"patterns": [{"urlPattern": CHAT_SITE}]})


@pytest.fixture
def open_screen(request, chromium, server, javascript) -> Iterator[Callable[..., Screen]]:
    """A factory of browser tabs, one per person, each with its own cookies; closed at the end.

    Screenshots go to test-artifacts/<test>/<person>/; a failed test also leaves failure.png there.
    """
    folder = ARTIFACTS / slug(request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    contexts: list[BrowserContext] = []
    screens: list[Screen] = []

    def context(viewport: dict, scripts: bool) -> BrowserContext:
        """A fresh browser profile at this size: a phone's touch screen at phone width."""
        phone = viewport["width"] <= PHONE["width"]
        made = chromium.new_context(
            viewport=viewport, java_script_enabled=scripts, is_mobile=phone, has_touch=phone,
            locale="en-GB", timezone_id="Europe/London",
        )
        made.set_default_timeout(TIMEOUT_MS)
        contexts.append(made)
        return made

    def make(who: str, viewport: dict = PHONE) -> Screen:
        """A tab for one person at a given size."""
        auditor: Callable[[], Page] | None = None
        if not javascript:
            pages: list[Page] = []

            def auditor() -> Page:
                """A tab with JavaScript at the same size, made on first use, where axe-core can run."""
                if not pages:
                    pages.append(context(viewport, True).new_page())
                return pages[0]

        tab = context(viewport, javascript)
        page = tab.new_page()
        answer_for_the_chat(tab, page)
        screen = Screen(page, server.url, folder / slug(who), auditor, touch=viewport["width"] <= PHONE["width"])
        screens.append(screen)
        return screen

    yield make
    call = request.node.stash.get(REPORT, {}).get("call")
    try:
        if call is not None and call.failed:
            for screen in screens:
                screen.folder.mkdir(parents=True, exist_ok=True)
                screen.page.screenshot(path=screen.folder / "failure.png", full_page=True)
    finally:
        for made in contexts:
            made.close()


@pytest.fixture
def sign_up(make_browser, make_code, db) -> Callable[..., str]:
    """A factory: a parent who goes through the journey off-screen, up to agreeing; returns where that led.

    The path is /invite/<token> for a group that lets parents straight in, or the waiting page.
    """

    def run(email: str, slug: str = "year-2-ash", name: str = "Sam Parent", child: str = "Amelia R.") -> str:
        """Code, details, the emailed link, both statements."""
        phone = make_browser()
        steps = [
            lambda: phone.submit(f"/join/{slug}", {"code": make_code(slug, child)}),
            lambda: phone.submit(f"/join/{slug}/details", {**DETAILS, "name": name, "email": email}),
            lambda: phone.get(link_in(outbox(db, to=email, kind="verify-email")[-1])),
            lambda: phone.submit(f"/join/{slug}/agree", {"agree_coc": "y", "acknowledge_notice": "y"}),
        ]
        for step in steps:  # each one moves the parent on to the next page
            response = step()
            assert response.status_code in (302, 303), response.get_data(as_text=True)
        return urlsplit(response.headers["Location"]).path

    return run
