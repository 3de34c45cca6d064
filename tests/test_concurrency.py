"""Races against a real server: many processes and threads hitting the same rows at once.

A gunicorn subprocess (4 workers x 4 threads) serves the test's own database, SQLite or
PostgreSQL, and each simulated parent is a separate requests.Session whose racing POST is held
at a threading.Barrier until all of them are ready.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import text as sql
from sqlmodel import Session, func, select

from membership import journey, ledger
from membership.db import session_scope
from membership.models import (
    EnrolmentCode,
    Group,
    Invite,
    LedgerEntry,
    LedgerHead,
    Membership,
    School,
    Status,
    User,
    Verification,
)
from membership.moderation import members

from .conftest import DETAILS, link_in, outbox
from .live_server import LiveServer, WebClient, text

GROUP = "year-2-ash"
CHAT_URL = "https://chat.whatsapp.com/AshChat"
BARRIER_SECONDS = 60  # only guards against a hung thread; nothing is timed


@pytest.fixture
def live_server(app, school, database_url, tmp_path) -> Iterator[LiveServer]:
    """gunicorn on a free port, serving the database the fixtures arrange data in."""
    server = LiveServer(database_url, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def web(live_server) -> Iterator[Callable[[], WebClient]]:
    """A factory of parents' browsers on the live server, all closed at the end."""
    clients: list[WebClient] = []

    def make() -> WebClient:
        """A new browser with its own cookie jar and connections."""
        client = WebClient(live_server.url)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def race(clients: list[WebClient], path: str, forms: list[dict[str, str]]) -> list[requests.Response]:
    """POST each client's form to path from its own thread, all released at once; results in order."""
    barrier = threading.Barrier(len(clients))

    def post(client: WebClient, form: dict[str, str]) -> requests.Response:
        """Wait for the others, then go."""
        barrier.wait(timeout=BARRIER_SECONDS)
        return client.post(path, form)

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        futures = [pool.submit(post, client, form) for client, form in zip(clients, forms, strict=True)]
        return [future.result() for future in futures]


def where(response: requests.Response) -> str:
    """The path a redirect points to ('' when it is not a redirect)."""
    return urlsplit(response.headers.get("Location", "")).path


def give_code(parent: WebClient, code: str) -> None:
    """Step 2 over HTTP: the code is accepted and the parent is sent on to their details."""
    response = parent.submit(f"/join/{GROUP}", {"code": code})
    assert response.status_code == 303, response.text
    assert where(response) == f"/join/{GROUP}/details"


def details(email: str) -> dict[str, str]:
    """The details form for a parent with this email."""
    return {**DETAILS, "email": email}


def verify_email(parent: WebClient, db: Session, email: str) -> None:
    """Open the confirmation link from the outbox; the parent lands on the agree page."""
    response = parent.get(link_in(outbox(db, to=email, kind="verify-email")[-1]), allow_redirects=False)
    assert response.status_code == 302, response.text
    assert where(response) == f"/join/{GROUP}/agree"


def to_agree_page(parent: WebClient, db: Session, code: str, email: str) -> None:
    """Code, details and email confirmation: the parent is ready to agree."""
    give_code(parent, code)
    started = parent.submit(f"/join/{GROUP}/details", details(email))
    assert started.status_code == 302, started.text
    assert where(started) == f"/join/{GROUP}/check-email"
    verify_email(parent, db, email)


def agree_fields(parent: WebClient) -> dict[str, str]:
    """The agree form as a parent sends it: its hidden fields and both statements ticked."""
    return {**parent.form(f"/join/{GROUP}/agree"), "agree_coc": "y", "acknowledge_notice": "y"}


def chain_of(db: Session, school_id: int) -> list[LedgerEntry]:
    """A school's ledger entries in order, read afresh."""
    db.commit()  # end the old snapshot so what the server wrote is visible
    return list(db.exec(select(LedgerEntry).where(LedgerEntry.school_id == school_id).order_by(LedgerEntry.seq)))


def school_id(db: Session) -> int:
    """The id of the fixture's school."""
    return db.exec(select(School.id)).one()


def test_twenty_simultaneous_clicks_redeem_the_invite_exactly_once(live_server, web, make_code, db):
    """Twenty devices press Open the group at once: one gets the chat link, nineteen are told it was used."""
    parent = web()
    email = DETAILS["email"]
    to_agree_page(parent, db, make_code(), email)
    agreed = parent.post(f"/join/{GROUP}/agree", agree_fields(parent))
    assert agreed.status_code == 303, agreed.text
    invite_path = where(agreed)
    assert invite_path.startswith("/invite/")
    emailed = link_in(outbox(db, to=email, kind="invite")[-1])
    assert urlsplit(emailed).path == invite_path

    # Twenty devices (the parent's phone, a forwarded email, a double tap...) each open the page.
    clients = [web() for _ in range(20)]
    forms = [{"csrf_token": client.form(invite_path)["csrf_token"]} for client in clients]
    responses = race(clients, invite_path, forms)

    opened = [response for response in responses if response.status_code == 303]
    refused = [response for response in responses if response.status_code != 303]
    assert len(opened) == 1, [response.status_code for response in responses]
    assert opened[0].headers["Location"] == CHAT_URL
    assert len(refused) == 19
    assert {response.status_code for response in refused} == {410}, live_server.log()
    for response in refused:
        assert "already been used" in text(response)
        assert CHAT_URL not in response.text

    sid = school_id(db)
    chain = chain_of(db, sid)
    invite = db.exec(select(Invite)).one()
    assert invite.used_at is not None and invite.revoked_at is None
    assert db.exec(select(Membership)).one().status == Status.LINK_USED
    assert [entry.action for entry in chain].count("invite_redeem") == 1
    assert ledger.verify(db, sid).ok
    assert live_server.errors() == [], live_server.log()


def test_a_two_use_code_lets_exactly_two_of_ten_simultaneous_parents_through(live_server, web, make_code, db):
    """Ten parents give details for one two-use code at once: two start, eight get the generic refusal."""
    code = make_code(uses_allowed=2)
    parents = [web() for _ in range(10)]
    for parent in parents:
        give_code(parent, code)  # every one passes: no use is taken until details are given
    forms = [
        {**parent.form(f"/join/{GROUP}/details"), **details(f"carer{number}@example.com")}
        for number, parent in enumerate(parents)
    ]
    responses = race(parents, f"/join/{GROUP}/details", forms)

    statuses = [response.status_code for response in responses]
    through = [n for n, response in enumerate(responses) if where(response) == f"/join/{GROUP}/check-email"]
    refused = [n for n, response in enumerate(responses) if n not in through]
    assert len(through) == 2, (statuses, live_server.log())
    assert len(refused) == 8
    for n in through:
        assert responses[n].status_code == 302
    for n in refused:
        assert responses[n].status_code == 303, (statuses, live_server.log())
        assert where(responses[n]) == f"/join/{GROUP}"
        page = parents[n].get(responses[n].headers["Location"])
        assert page.status_code == 200
        assert "That code was not accepted" in text(page)

    sid = school_id(db)
    chain = chain_of(db, sid)
    assert db.exec(select(EnrolmentCode)).one().uses_taken == 2
    memberships = db.exec(select(Membership)).all()
    assert len(memberships) == 2
    assert {m.status for m in memberships} == {Status.DETAILS_GIVEN}
    assert [entry.action for entry in chain].count("request") == 2
    assert len(outbox(db, kind="verify-email")) == 2
    assert ledger.verify(db, sid).ok
    assert live_server.errors() == [], live_server.log()


def test_ten_simultaneous_agreements_never_fork_the_ledger(live_server, web, make_code, db):
    """Ten parents agree at the same moment: the chain stays one unbroken sequence with no gaps."""
    parents = [web() for _ in range(10)]
    for number, parent in enumerate(parents):
        to_agree_page(parent, db, make_code(name=f"Child {number}."), f"carer{number}@example.com")
    sid = school_id(db)
    before = len(chain_of(db, sid))
    forms = [agree_fields(parent) for parent in parents]
    responses = race(parents, f"/join/{GROUP}/agree", forms)

    assert [response.status_code for response in responses] == [303] * 10, live_server.log()
    assert all(where(response).startswith("/invite/") for response in responses)

    chain = chain_of(db, sid)
    assert [entry.seq for entry in chain] == list(range(1, len(chain) + 1))
    # Each agreement writes agree, acknowledge, approve and invite_issue: four entries apiece.
    assert len(chain) == before + 40
    for previous, entry in pairwise(chain):
        assert entry.prev_hash == previous.entry_hash
    head = db.get(LedgerHead, sid, populate_existing=True)
    assert (head.seq, head.head_hash) == (len(chain), chain[-1].entry_hash)
    actions = [entry.action for entry in chain[before:]]
    assert {action: actions.count(action) for action in set(actions)} == {
        "agree": 10, "acknowledge": 10, "approve": 10, "invite_issue": 10,
    }
    assert db.exec(select(func.count()).select_from(Invite)).one() == 10
    assert ledger.verify(db, sid).ok
    assert live_server.errors() == [], live_server.log()


def test_one_email_started_from_six_phones_at_once_gets_one_membership(live_server, web, make_code, db):
    """Simultaneous starts with one email make one request; the rest get a 'carry on' email, not a duplicate."""
    parents = [web() for _ in range(6)]
    for number, parent in enumerate(parents):
        give_code(parent, make_code(name=f"Child {chr(ord('A') + number)}."))
    forms = [{**parent.form(f"/join/{GROUP}/details"), **details("same@example.com")} for parent in parents]
    responses = race(parents, f"/join/{GROUP}/details", forms)

    assert all(where(response) == f"/join/{GROUP}/check-email" for response in responses), live_server.log()
    memberships = db.exec(select(Membership)).all()
    assert len(memberships) == 1
    assert sum(code.uses_taken for code in db.exec(select(EnrolmentCode))) == 1
    assert len(outbox(db, to="same@example.com", kind="verify-email")) == 1
    assert len(outbox(db, to="same@example.com", kind="continue")) == 5
    assert ledger.verify(db, school_id(db)).ok
    assert live_server.errors() == [], live_server.log()


def test_parents_starting_and_agreeing_at_the_same_moment_all_get_through(live_server, web, make_code, db):
    """Starts lock the group, agreements lock the chain: mixed together they must queue, never deadlock.

    On PostgreSQL a FOR UPDATE on the group would block the foreign-key checks that agreeing
    makes on it while holding the chain, and the two would deadlock (a 500 for one parent).
    """
    agreeing = [web() for _ in range(6)]
    for number, parent in enumerate(agreeing):
        to_agree_page(parent, db, make_code(name=f"Agree {chr(ord('A') + number)}."), f"agree{number}@example.com")
    starting = [web() for _ in range(6)]
    for number, parent in enumerate(starting):
        give_code(parent, make_code(name=f"Start {chr(ord('A') + number)}."))
    jobs = [(parent, f"/join/{GROUP}/agree", agree_fields(parent)) for parent in agreeing] + [
        (parent, f"/join/{GROUP}/details", {**parent.form(f"/join/{GROUP}/details"), **details(f"s{n}@example.com")})
        for n, parent in enumerate(starting)
    ]
    barrier = threading.Barrier(len(jobs))

    def post(parent: WebClient, path: str, form: dict[str, str]) -> requests.Response:
        barrier.wait(timeout=BARRIER_SECONDS)
        return parent.post(path, form)

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        responses = [future.result() for future in [pool.submit(post, *job) for job in jobs]]

    assert [r.status_code for r in responses] == [303] * 6 + [302] * 6, live_server.log()
    assert all(where(r).startswith("/invite/") for r in responses[:6])
    assert all(where(r) == f"/join/{GROUP}/check-email" for r in responses[6:])
    assert ledger.verify(db, school_id(db)).ok
    assert live_server.errors() == [], live_server.log()


def test_agree_pressed_on_six_tabs_at_once_records_one_agreement_and_one_invite(live_server, web, make_code, db):
    """One parent's agree form sent six times at once (tabs, a double tap): one pair of agreements, one invite.

    Every request reads the membership as 'email verified'; only the first to lock it may agree,
    and the others find it already agreed and are sent on to the invite like a second tap would be.
    """
    parent = web()
    to_agree_page(parent, db, make_code(name="Tabs T."), "tabs@example.com")
    tabs = [parent]
    for _ in range(5):
        tab = web()
        tab.http.cookies.update(parent.http.cookies)
        tabs.append(tab)
    form = agree_fields(parent)
    sid = school_id(db)
    before = len(chain_of(db, sid))

    responses = race(tabs, f"/join/{GROUP}/agree", [form] * len(tabs))

    assert all(response.status_code in (302, 303) for response in responses), live_server.log()
    actions = [entry.action for entry in chain_of(db, sid)[before:]]
    assert sorted(actions) == ["acknowledge", "agree", "approve", "invite_issue"]
    assert db.exec(select(func.count()).select_from(Invite)).one() == 1
    assert ledger.verify(db, sid).ok
    assert live_server.errors() == [], live_server.log()


def test_the_email_link_opened_six_times_at_once_confirms_the_email_once(live_server, web, make_code, db):
    """A mail app's link checker and the parent's own taps open the confirmation link at the same moment.

    Each opening carries on to the agree page; the ledger records the confirmation once.
    """
    parent = web()
    give_code(parent, make_code(name="Link L."))
    started = parent.submit(f"/join/{GROUP}/details", details("link@example.com"))
    assert where(started) == f"/join/{GROUP}/check-email"
    link = link_in(outbox(db, to="link@example.com", kind="verify-email")[-1])
    tabs = [web() for _ in range(6)]
    barrier = threading.Barrier(len(tabs))

    def open_link(tab: WebClient) -> requests.Response:
        barrier.wait(timeout=BARRIER_SECONDS)
        return tab.get(link, allow_redirects=False)

    with ThreadPoolExecutor(max_workers=len(tabs)) as pool:
        responses = list(pool.map(open_link, tabs))

    assert [where(response) for response in responses] == [f"/join/{GROUP}/agree"] * 6, live_server.log()
    actions = [entry.action for entry in chain_of(db, school_id(db))]
    assert actions.count("email_verified") == 1
    assert db.exec(select(Membership.status)).one() == Status.EMAIL_VERIFIED
    assert live_server.errors() == [], live_server.log()


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="row locks: SQLite's writers never interleave")
def test_a_removal_under_way_while_the_parent_opens_the_group_answers_revoked_not_an_error(
    live_server, web, make_code, make_moderator, app, db
):
    """A moderator is removing a parent at the moment the parent presses 'Open the group'.

    The removal has locked the membership and not yet revoked the invite. The click waits for
    it, then says the link was cancelled: no chat link, no deadlock between the two, no error.
    """
    parent = web()
    to_agree_page(parent, db, make_code(name="Race R."), "race@example.com")
    invite = where(parent.post(f"/join/{GROUP}/agree", agree_fields(parent)))
    assert invite.startswith("/invite/")
    fields = parent.form(invite)
    make_moderator("rep@example.com", GROUP)

    with app.app_context(), session_scope() as removing:
        membership = removing.exec(select(Membership)).one()
        moderator = removing.exec(select(User).where(User.email == "rep@example.com")).one()
        members._locked(removing, membership)
        with ThreadPoolExecutor(max_workers=1) as pool:
            click = pool.submit(parent.post, invite, fields)
            waiting = sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            for _ in range(300):
                if removing.connection().execute(waiting).scalar():
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the click never waited for the removal's lock")
            members.remove(removing, membership, moderator, "abuse", None)
            removing.commit()
            response = click.result(timeout=60)

    assert response.status_code == 410, live_server.log()
    assert "chat.whatsapp.com" not in response.text
    db.commit()
    assert db.exec(select(Membership.status)).one() == Status.REMOVED
    assert db.exec(select(Invite.used_at)).one() is None
    assert ledger.verify(db, school_id(db)).ok
    assert live_server.errors() == [], live_server.log()


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="PostgreSQL's locks: SQLite has one writer")
def test_a_start_under_way_does_not_hold_up_another_parents_start(live_server, web, make_code, app, db):
    """Two parents of one class give their details at the same moment: neither waits for the other.

    Only starts with the same email queue (the six-phones test above); the letter goes home to the
    whole class on one afternoon, and one slow start must not stall the others.
    """
    other = web()
    give_code(other, make_code(name="Other O."))
    form = {**other.form(f"/join/{GROUP}/details"), **details("other@example.com")}
    with app.app_context(), session_scope() as starting:
        group = starting.exec(select(Group).where(Group.slug == GROUP)).one()
        journey.start(starting, group, journey.Proof(Verification.NONE, claimed_child_name="Slow S."),
                      name="Slow Parent", relationship="parent", email="slow@example.com", mobile=None)
        with ThreadPoolExecutor(max_workers=1) as pool:
            response = pool.submit(other.post, f"/join/{GROUP}/details", form).result(timeout=30)
        assert where(response) == f"/join/{GROUP}/check-email", live_server.log()

    db.commit()
    assert sorted(db.exec(select(Membership.sort_name))) == ["sam parent", "slow parent"]
    assert ledger.verify(db, school_id(db)).ok
    assert live_server.errors() == [], live_server.log()
