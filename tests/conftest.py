"""Fixtures: a fresh app and database per test (SQLite, or TEST_DATABASE_URL's PostgreSQL)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, func
from sqlmodel import Session, SQLModel, select

from membership import create_app, schools
from membership.db import session_scope
from membership.extensions import limiter
from membership.models import (
    CarerInvitation,
    EnrolmentCode,
    Invite,
    LedgerEntry,
    Membership,
    OutboxMessage,
    Person,
    Role,
)

BASE_URL = "http://classgate.test"
HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*>')
ATTR = re.compile(r'(name|value)="([^"]*)"')
LINK = re.compile(r"https?://\S+")


def reset_postgres(url: str) -> None:
    """Drop everything in the public schema (earlier tests, migrations, triggers)."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture
def database_url(tmp_path) -> str:
    """An empty database: PostgreSQL when TEST_DATABASE_URL is set, else a SQLite file."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path / 'classgate.db'}"


@pytest.fixture
def config(database_url, tmp_path) -> dict:
    """Settings for a test app."""
    return {
        "ENV_NAME": "testing",
        "TESTING": True,
        "DATABASE_URL": database_url,
        "BASE_URL": BASE_URL,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "MAIL_SEND_INLINE": False,
        "MAIL_WRITE_FILES": True,
        "SMTP_HOST": "",
        "CODE_LIMIT_PER_CLIENT": "1000 per minute",
        "CODE_LIMIT_PER_GROUP": "1000 per minute",
        "MAIL_LIMIT_PER_CLIENT": "1000 per minute",
    }


class PhoneClient(FlaskClient):
    """A test client whose every request runs in its own application context, as in production.

    The `app` fixture keeps a context open for the whole test (so factories can use the app),
    and Flask would otherwise reuse it for each request, carrying `g` (Flask-WTF's CSRF token,
    Flask-Login's user, the request's database session) from one phone's request to another's.
    """

    def open(self, *args, **kwargs):
        """Make the request inside a fresh application context."""
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def app(config):
    """A Classgate app with its tables created."""
    app = create_app(config)
    app.test_client_class = PhoneClient
    limiter.reset()
    engine = app.extensions["classgate_engine"]
    SQLModel.metadata.create_all(engine)
    with app.app_context():
        yield app
    engine.dispose()


@pytest.fixture
def db(app):
    """A session for checking data outside requests.

    Call db.commit() before reading after a request: it ends the read snapshot and expires
    what was loaded, so the next query sees what the request wrote.
    """
    session = Session(app.extensions["classgate_engine"])
    yield session
    session.close()


@pytest.fixture
def client(app):
    """A test client."""
    return app.test_client()


class Browser:
    """A test client that behaves like a person: reads forms and sends their CSRF token."""

    def __init__(self, client) -> None:
        self.client = client
        self.last = None

    def get(self, url: str, **kwargs):
        """GET a page (path or absolute Classgate URL)."""
        self.last = self.client.get(self.path(url), **kwargs)
        return self.last

    def submit(self, url: str, data: dict | None = None, **kwargs):
        """Open the page, then post the form on it with its CSRF token."""
        page = self.client.get(self.path(url))
        hidden = self.hidden_fields(page.get_data(as_text=True))
        assert "csrf_token" in hidden, f"no form with a CSRF token on {url} ({page.status_code})"
        payload = {**hidden, **(data or {})}
        self.last = self.client.post(self.path(url), data=payload, **kwargs)
        return self.last

    @staticmethod
    def hidden_fields(html: str) -> dict[str, str]:
        """The hidden inputs of the page's forms (CSRF token, document versions)."""
        fields = {}
        for tag in HIDDEN.findall(html):
            attrs = dict(ATTR.findall(tag))
            if "name" in attrs:
                fields[attrs["name"]] = unescape(attrs.get("value", ""))
        return fields

    @staticmethod
    def path(url: str) -> str:
        """Turn an absolute link from an email into a path for the test client."""
        if url.startswith("http"):
            parts = urlsplit(url)
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return url


@pytest.fixture
def browser(client) -> Browser:
    """A parent's phone."""
    return Browser(client)


@pytest.fixture
def make_browser(app):
    """More phones, each with its own cookies."""
    return lambda: Browser(app.test_client())


def text_of(response) -> str:
    """A response's text with tags and entities removed and whitespace collapsed."""
    html = response.get_data(as_text=True)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def outbox(session, to: str | None = None, kind: str | None = None) -> list[OutboxMessage]:
    """Messages in the outbox, oldest first."""
    session.commit()
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if to:
        query = query.where(OutboxMessage.to_addr == to)
    if kind:
        query = query.where(OutboxMessage.kind == kind)
    return list(session.exec(query).all())


def link_in(message: OutboxMessage) -> str:
    """The first link in an email's body."""
    match = LINK.search(message.body_text)
    assert match, f"no link in email {message.subject!r}"
    return match.group(0)


@pytest.fixture
def school(app):
    """A school with the default documents and two groups: open, and approval-required."""
    with session_scope() as session:
        school = schools.create_school(session, "elm-primary", "Elm Primary School", "office@elm.example")
        schools.create_group(session, school, "year-2-ash", "Year 2 Ash", chat_url="https://chat.whatsapp.com/AshChat")
        schools.create_group(
            session, school, "year-4-birch", "Year 4 Birch", chat_url="https://chat.whatsapp.com/BirchChat",
            requires_approval=True,
        )
    return school


@pytest.fixture
def make_code(app, school):
    """A factory: a new child in a group and the code printed on their letter."""

    def make(group_slug: str = "year-2-ash", name: str = "Amelia R.", uses_allowed: int = 2) -> str:
        with session_scope() as session:
            group = schools.group_by_slug(session, group_slug)
            return schools.add_child(session, group, name, uses_allowed=uses_allowed).code

    return make


DETAILS = {"name": "Sam Parent", "relationship": "parent", "email": "sam@example.com", "mobile": "07911 123456"}


@pytest.fixture
def journey(browser, db, make_code):
    """Drive a parent through the journey step by step; each step returns the last response."""

    class Journey:
        def __init__(self) -> None:
            self.browser = browser

        def code(self, slug="year-2-ash", code=None):
            return browser.submit(f"/join/{slug}", {"code": code or make_code(slug)})

        def details(self, slug="year-2-ash", **overrides):
            return browser.submit(f"/join/{slug}/details", {**DETAILS, **overrides})

        def verify(self, email=DETAILS["email"]):
            message = outbox(db, to=email, kind="verify-email")[-1]
            return browser.get(link_in(message))

        def agree(self, slug="year-2-ash"):
            return browser.submit(f"/join/{slug}/agree", {"agree_coc": "y", "acknowledge_notice": "y"})

        def through_agree(self, slug="year-2-ash", **details):
            self.code(slug)
            self.details(slug, **details)
            self.verify(details.get("email", DETAILS["email"]))
            return self.agree(slug)

    return Journey()


# --- Helpers for checking that a refused request changed nothing -------------------------------


def snapshot(session) -> dict:
    """What a parent's request could change: rows, statuses, code uses, invitations and mail."""
    session.commit()

    def count(model) -> int:
        return session.exec(select(func.count()).select_from(model)).one()

    return {
        "memberships": count(Membership),
        "people": count(Person),
        "ledger": count(LedgerEntry),
        "invites": count(Invite),
        "outbox": count(OutboxMessage),
        "statuses": sorted((m.id, str(m.status)) for m in session.exec(select(Membership))),
        "code_uses": sorted((c.id, c.uses_taken, c.revoked_at is None) for c in session.exec(select(EnrolmentCode))),
        "invite_states": sorted(
            (i.id, i.used_at is None, i.revoked_at is None) for i in session.exec(select(Invite))
        ),
        "invitation_states": sorted(
            (i.id, i.used_at is None, i.revoked_at is None) for i in session.exec(select(CarerInvitation))
        ),
    }


def csrf_token(browser: Browser, url: str = "/join/year-2-ash") -> str:
    """A valid CSRF token for this browser's session, read from a page with a form."""
    return Browser.hidden_fields(browser.get(url).get_data(as_text=True))["csrf_token"]


def error_summary(response) -> list[tuple[str, str]]:
    """The error summary's entries as (link target, message), checking each target is on the page."""
    html = response.get_data(as_text=True)
    summary = re.search(r'<div class="error-summary".*?</div>', html, re.S)
    entries = re.findall(r'<a href="#([^"]*)">([^<]*)</a>', summary.group(0)) if summary else []
    for target, _ in entries:
        assert f'id="{target}"' in html, f"the error summary links to #{target}, which is not on the page"
    return [(f"#{target}", unescape(message).strip()) for target, message in entries]


@pytest.fixture
def group(db):
    """Look a group up by its slug (fresh from the database)."""
    def find(slug: str = "year-2-ash"):
        db.commit()
        return schools.group_by_slug(db, slug)

    return find


@pytest.fixture
def make_child(app, school):
    """A factory: a new child in a group, returning (child id, printed code)."""

    def make(group_slug: str = "year-2-ash", name: str = "Amelia R.", uses_allowed: int = 2) -> tuple[int, str]:
        with session_scope() as session:
            group_row = schools.group_by_slug(session, group_slug)
            new = schools.add_child(session, group_row, name, uses_allowed=uses_allowed)
            return new.child.id, new.code

    return make


@pytest.fixture
def make_moderator(app, school):
    """A factory: a moderator account for some groups, returning its email."""

    def make(email: str, *group_slugs: str) -> str:
        with session_scope() as session:
            school_row = schools.school_by_slug(session, "elm-primary")
            groups = [schools.group_by_slug(session, slug) for slug in group_slugs]
            schools.create_user(session, school_row, email, Role.MODERATOR, name="Class Rep", groups=groups)
        return email

    return make


# --- Staff and moderator accounts -----------------------------------------------------------------

PASSWORD = "correct horse battery staple"


@pytest.fixture
def make_account(app, school):
    """A factory: an account with a password, optionally a moderator of some groups who has accepted the notice."""
    from membership import moderation

    def make(email: str, role: Role = Role.MODERATOR, groups: tuple[str, ...] = ("year-2-ash",), *,
             password: str = PASSWORD, accept_notice: bool = True, school_slug: str = "elm-primary") -> int:
        with session_scope() as session:
            school_row = schools.school_by_slug(session, school_slug)
            group_rows = [schools.group_by_slug(session, slug) for slug in groups]
            user = schools.create_user(session, school_row, email, role, name=email.split("@")[0], groups=group_rows,
                                       password=password)
            if accept_notice:
                moderation.accept_notice(session, user, moderation.current_notice(session, school_row.id).id)
            return user.id

    return make


def sign_in(browser: Browser, email: str, password: str = PASSWORD):
    """Sign a browser in through /login; returns the response."""
    return browser.submit("/login", {"email": email, "password": password})


@pytest.fixture
def moderator(make_account, make_browser) -> Browser:
    """A signed-in moderator of Year 2 Ash who has accepted the moderator notice."""
    make_account("rep@elm.example")
    phone = make_browser()
    response = sign_in(phone, "rep@elm.example")
    assert response.status_code == 303, response.get_data(as_text=True)
    return phone


@pytest.fixture
def staff(make_account, make_browser) -> Browser:
    """A signed-in member of staff at Elm Primary School."""
    make_account("office@elm.example", Role.STAFF, (), accept_notice=False)
    phone = make_browser()
    response = sign_in(phone, "office@elm.example")
    assert response.status_code == 303, response.get_data(as_text=True)
    return phone


@pytest.fixture
def other_school(app, school):
    """A second school with a group, a child, a waiting parent and a staff account: what staff of Elm must never see."""
    from membership import journey as steps
    from membership.models import Concern, Verification

    with session_scope() as session:
        other = schools.create_school(session, "pine-primary", "Pine Primary School", "office@pine.example")
        group_row = schools.create_group(session, other, "year-1-pine", "Year 1 Pine", requires_approval=True,
                                         chat_url="https://chat.whatsapp.com/PineChat")
        child = schools.add_child(session, group_row, "Pip P.").child
        user = schools.create_user(session, other, "office@pine.example", Role.STAFF, password=PASSWORD)
        membership = steps.start(
            session, group_row, steps.Proof(Verification.NONE, claimed_child_name="Pip P."),
            name="Pine Parent", relationship="parent", email="pine.parent@example.com", mobile=None,
        )
        concern = Concern(school_id=other.id, group_id=group_row.id, what_happened="Something at Pine only.")
        session.add(concern)
        session.flush()
        return {"slug": group_row.slug, "child_id": child.id, "membership_id": membership.id, "user_id": user.id,
                "school_id": other.id, "concern_id": concern.id}


# --- Counting SQL statements ----------------------------------------------------------------------


@contextmanager
def counting_statements(app) -> Iterator[list[str]]:
    """Collect the SQL statements the app's engine runs inside the block (to show a page does not grow with data)."""
    engine = app.extensions["classgate_engine"]
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)
