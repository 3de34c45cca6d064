"""Hostile input to every form: random and oversized values, control characters, odd Unicode, missing fields.

Property-based (Hypothesis), derandomised so every run, on every machine, tries the same examples.
Whatever is posted to a form:

- the answer is never a server error;
- a refused form (400) says what is wrong in its error summary, changes nothing in the database,
  and shows again what was typed (passwords and files excepted);
- nothing sent to the database holds a NUL character or an integer beyond 64 bits. PostgreSQL
  refuses NUL in text and SQLite cannot store such integers, so watching every statement makes a
  SQLite run find what would otherwise be a server error on PostgreSQL only.

Beside the random examples, each field in turn gets NUL (always refused, at that field), 10,000
characters, a text-direction override, and emoji with combining marks and full-width digits; the
parts of addresses that name a group, token or record, and the staff pages' query strings, get
hostile values too; and a post of several megabytes is refused as too large.

The app and its database are built once per test by pytest's function-scoped fixtures, and the
examples of a test run one after another against what the earlier ones left behind. That is
intended: the properties must hold in any state, and each example compares the database before
and after itself. It is why the function-scoped-fixture health check is suppressed.
"""

from __future__ import annotations

import io
import itertools
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, update
from sqlmodel import SQLModel
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from membership import codes, journey, parents, policies, schools
from membership.db import session_scope
from membership.extensions import limiter
from membership.models import (
    CarerBlock,
    Concern,
    ConcernStatus,
    IncidentAction,
    Membership,
    Platform,
    Role,
    User,
    Verification,
)

from .conftest import PASSWORD, Browser, error_summary, link_in, outbox, sign_in, text_of

# --- Settings ---------------------------------------------------------------------------------------

HOSTILE = settings(
    derandomize=True,  # the same examples on every run: a failure in CI is a failure on a laptop
    database=None,  # nothing remembered between runs, so no run depends on an earlier one
    deadline=None,  # a request's time depends on the machine's load, not on the input
    max_examples=20,
    # The app is built once per test and shared by its examples (see the module's docstring); each example
    # is a whole request or two, slower than Hypothesis expects; and 10,000-character values are the point.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- What hostile input looks like ------------------------------------------------------------------

NASTY = (
    # control characters, NUL first: PostgreSQL refuses it in any text column
    "\x00", "Sam\x00Parent", "\x00\x00\x00", "\x1b[2J", "\x07\x08", "\x7f", "\x85", "\u2028", "\r\n\r\n", "\t",
    # text direction overrides and invisible characters
    "\u202eevil\u202c", "\u2067abc\u2069", "\u200b", "\u200d", "\ufeff", "\u2060",
    # emoji, with and without joiners, and combining marks
    "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🙂", "e\u0301\u0301\u0301", "Z\u0336\u0334a\u0335l\u0337g\u0338o",
    "\u0301" * 40,
    # digits that are not ASCII digits
    "１２３４", "٣٤", "²³", "Ⅻ",
    # the edges of Unicode
    "\uffff", "\ufffd", "\U0010ffff", "\U000e0041",
    # far too much
    "A" * 10_000, "ñ" * 10_000, "🙂" * 10_000, "a\u0301" * 5_000,
    # markup, SQL and format strings
    "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "' OR '1'='1' --", "%00", "%s%n", "{{ 7*7 }}",
    # nothing, or only spaces
    "", " ", "\u00a0", "\u3000",
)
# Numbers no id or count can be, for the fields (and hidden version numbers) that hold one.
HUGE = ("9" * 30, "-1", "0", "1e309", "0x10", "1_000", "2147483648", "9223372036854775808", "-9223372036854775809")
# Every character a browser can send: surrogates cannot be encoded, so they never arrive.
CHARACTERS = st.characters(codec="utf-8")
HOSTILE_TEXT = st.one_of(st.sampled_from(NASTY), st.text(CHARACTERS, max_size=40), st.sampled_from(HUGE))
DROP = object()  # a field the page carries (a hidden version number) left out of the post


def splice(value: str, nasty: str, at: int) -> str:
    """A sensible value with something hostile put inside it."""
    where = at % (len(value) + 1)
    return value[:where] + nasty + value[where:]


def typed(*sensible: str) -> st.SearchStrategy[str]:
    """A field's value: what a person would type, something hostile, or the first with the second inside it."""
    good = st.sampled_from(sensible)
    return st.one_of(good, HOSTILE_TEXT, st.builds(splice, good, st.sampled_from(NASTY), st.integers(0, 200)))


def hidden_value() -> st.SearchStrategy:
    """A hidden field (a version number) forged: left out, or anything at all."""
    return st.one_of(st.just(DROP), HOSTILE_TEXT)


def form_data(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy[dict]:
    """Every field filled in (sensibly or not), or only some of them."""
    return st.one_of(st.fixed_dictionaries(fields), st.fixed_dictionaries({}, optional=fields))


# --- Watching the database ----------------------------------------------------------------------------


def _values(parameters) -> Iterator[object]:
    """Every value bound to a statement, however the driver groups them."""
    if isinstance(parameters, dict):
        for value in parameters.values():
            yield from _values(value)
    elif isinstance(parameters, list | tuple):
        for value in parameters:
            yield from _values(value)
    else:
        yield parameters


@pytest.fixture
def refused_by_database(app) -> Iterator[list[str]]:
    """Values the app sent to the database that PostgreSQL or SQLite would refuse (NUL, integers over 64 bits)."""
    engine = app.extensions["classgate_engine"]
    found: list[str] = []

    def check(conn, cursor, statement, parameters, context, executemany) -> None:
        for value in _values(parameters):
            if isinstance(value, str) and "\x00" in value:
                found.append(f"NUL in a value for: {statement[:120]}")
            elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
                found.append(f"{str(value)[:20]}… does not fit 64 bits, for: {statement[:120]}")

    event.listen(engine, "before_cursor_execute", check)
    yield found
    event.remove(engine, "before_cursor_execute", check)


def database_rows(db) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order: the whole state a request could change."""
    db.commit()
    connection = db.connection()
    # Plain SQL over the driver: this runs twice per example, and the ORM's overhead would double the run time.
    return {name: connection.exec_driver_sql(query).fetchall() for name, query in _TABLE_QUERIES}


_TABLE_QUERIES = [
    (table.name, f'SELECT * FROM "{table.name}" ORDER BY {", ".join(c.name for c in table.primary_key.columns)}')
    for table in SQLModel.metadata.sorted_tables
]


def changed_tables(before: dict, after: dict) -> list[str]:
    """The tables whose rows differ."""
    return [name for name in before if before[name] != after[name]]


# --- What a page shows in its fields ------------------------------------------------------------------


class FieldValues(HTMLParser):
    """Each field's value on a page: text boxes and text areas, and the ticked or selected options."""

    HIDDEN_FROM_VIEW = ("hidden", "password", "file", "submit", "button")

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.values: dict[str, list[str]] = defaultdict(list)
        self.options: dict[str, set[str]] = defaultdict(set)  # every radio's and select's choices
        self.textareas: set[str] = set()
        self._textarea: str | None = None
        self._select: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note an input's value, or start collecting a text area's or select's."""
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input" and name:
            kind = (attributes.get("type") or "text").lower()
            if kind in ("radio", "checkbox"):
                self.options[name].add(attributes.get("value") or "on")
                if "checked" in attributes:
                    self.values[name].append(attributes.get("value") or "on")
            elif kind not in self.HIDDEN_FROM_VIEW:
                self.values[name].append(attributes.get("value") or "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.textareas.add(name)
            self.values[name].append("")
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select:
            self.options[self._select].add(attributes.get("value") or "")
            if "selected" in attributes:
                self.values[self._select].append(attributes.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        """Stop collecting a text area or select."""
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        """A text area's text."""
        if self._textarea:
            self.values[self._textarea][-1] += data

    def shown(self, name: str) -> list[str]:
        """What the page shows in a field (a text area's first line break belongs to the markup)."""
        values = self.values.get(name, [])
        return [value.removeprefix("\r\n") for value in values] if name in self.textareas else values


# --- The school and its people, as the forms need them -------------------------------------------------

MODERATOR = "rep@elm.example"
STAFF = "office@elm.example"


@dataclass
class Target:
    """Where a form is: the browser that fills it in, the page showing it, and where it posts."""

    browser: Browser
    page: str
    action: str = ""

    def __post_init__(self) -> None:
        self.action = self.action or self.page


class World:
    """Elm Primary with its moderator, staff, members and requests, each made when a form first needs it."""

    def __init__(self, db, make_account, make_browser) -> None:
        self.db = db
        self.make_account = make_account
        self.make_browser = make_browser
        self.numbers = itertools.count(1)
        self.targets: dict[str, Target] = {}
        self._signed_in: dict[str, Browser] = {}
        self.emails: dict[int, str] = {}
        self.invites: dict[int, str | None] = {}  # the one-time link into the chat, for an open group

    def number(self) -> int:
        """A number not used before in this test, for unique names and addresses."""
        return next(self.numbers)

    def account(self, email: str, role: Role = Role.MODERATOR, *, accept_notice: bool = True) -> Browser:
        """A browser signed in to an account (made on first use) that moderates both groups, or is staff."""
        if email not in self._signed_in:
            groups = ("year-2-ash", "year-4-birch") if role == Role.MODERATOR else ()
            self.make_account(email, role, groups, accept_notice=accept_notice)
            phone = self.make_browser()
            assert sign_in(phone, email).status_code == 303
            self._signed_in[email] = phone
        return self._signed_in[email]

    @property
    def moderator(self) -> Browser:
        """The class rep of both groups, who has accepted the moderator notice."""
        return self.account(MODERATOR)

    @property
    def staff(self) -> Browser:
        """A member of staff."""
        return self.account(STAFF, Role.STAFF)

    def code(self, slug: str = "year-2-ash") -> tuple[int, str]:
        """A new child in a group: their id and the code on their letter."""
        with session_scope() as session:
            new = schools.add_child(session, schools.group_by_slug(session, slug), f"Pupil {self.number()}")
            return new.child.id, new.code

    def membership(self, slug: str = "year-2-ash", *, with_code: bool = True) -> int:
        """A parent who has given their details, confirmed their email and agreed (a member, or waiting)."""
        n = self.number()
        with session_scope() as session:
            group = schools.group_by_slug(session, slug)
            if with_code:
                code = schools.add_child(session, group, f"Pupil {n}").code
                proof = journey.Proof(Verification.CODE, code_id=codes.find(session, code, group.id).id)
            else:
                proof = journey.Proof(Verification.NONE, claimed_child_name=f"Pupil {n}")
            membership = journey.start(
                session, group, proof, name=f"Parent {n}", relationship="parent", email=f"parent{n}@example.com",
                mobile=None,
            )
            journey.verify_email(session, journey.verification_token(membership))
            coc, notice = journey.current_documents(session, group.school_id)
            self.invites[membership.id] = journey.agree(session, membership, coc.id, notice.id).invite_token
            self.emails[membership.id] = f"parent{n}@example.com"
            return membership.id

    def must_reagree(self, membership_id: int) -> None:
        """Ask a member to agree again, as a material change to the code of conduct does."""
        with session_scope() as session:
            session.exec(update(Membership).where(Membership.id == membership_id).values(needs_reagree=True))

    def sign_in_link(self, membership_id: int) -> str:
        """A /me/ sign-in link emailed to the parent of a membership (path)."""
        email = self.emails[membership_id]
        with session_scope() as session:
            parents.send_link(session, email)
        return Browser.path(link_in(outbox(self.db, to=email, kind="parent-sign-in")[-1]))

    def signed_in_parent(self, membership_id: int) -> Browser:
        """A browser signed in at /me/ as the parent of a membership."""
        phone = self.make_browser()
        assert phone.submit(self.sign_in_link(membership_id)).status_code == 303
        return phone

    def at_details(self, slug: str = "year-2-ash") -> Browser:
        """A phone that has typed a working code and is on the details step."""
        phone = self.make_browser()
        assert phone.submit(f"/join/{slug}", {"code": self.code(slug)[1]}).status_code == 303
        return phone

    def at_check_email(self) -> tuple[Browser, str]:
        """A phone that has given its details and is asked to confirm its email; and that email."""
        phone = self.at_details()
        email = f"joining{self.number()}@example.com"
        details = {"name": "Sam Parent", "relationship": "parent", "email": email, "mobile": ""}
        assert phone.submit("/join/year-2-ash/details", details).status_code == 302
        return phone, email

    def at_agree(self) -> Browser:
        """A phone that has confirmed its email, on the agree step."""
        phone, email = self.at_check_email()
        assert phone.get(link_in(outbox(self.db, to=email, kind="verify-email")[-1])).status_code == 302
        return phone

    def set_password_link(self) -> str:
        """The set-password link of a new moderator account."""
        email = f"new.rep{self.number()}@elm.example"
        with session_scope() as session:
            school = schools.school_by_slug(session, "elm-primary")
            user = schools.create_user(session, school, email, Role.MODERATOR)
            schools.send_set_password(session, user)
        return Browser.path(link_in(outbox(self.db, to=email, kind="set-password")[-1]))

    def concern(self) -> int:
        """A concern in the school's inbox."""
        with session_scope() as session:
            school = schools.school_by_slug(session, "elm-primary")
            concern = Concern(school_id=school.id, what_happened="A photo of a child was posted without asking.")
            session.add(concern)
            session.flush()
            return concern.id

    def block(self, child_id: int) -> int:
        """A carer block on a child."""
        with session_scope() as session:
            user = session.exec(select(User).where(User.email == STAFF)).scalar_one()
            block = CarerBlock(child_id=child_id, email=f"barred{self.number()}@example.com", reason="Court order",
                               created_by_user_id=user.id)
            session.add(block)
            session.flush()
            return block.id


@pytest.fixture
def world(school, db, make_account, make_browser) -> World:
    """Elm Primary, its groups and whatever else each form needs, made on demand."""
    return World(db, make_account, make_browser)


# --- The forms ---------------------------------------------------------------------------------------

Values = dict[str, tuple[str, ...]]


@dataclass
class Form:
    """A form: how to reach it, what a person would type in each field, and how it answers."""

    name: str
    target: Callable[[World], Target]  # a browser ready to fill it in (made again once its form is done with)
    # Each field's sensible values; the first of each fills the form in so that it is accepted.
    sensible: Callable[[World, Target], Values]
    typed_in: tuple[str, ...] = ()  # fields typed or chosen by a person: NUL in any of them is refused there
    reshown: tuple[str, ...] = ()  # fields a refused form shows again exactly as typed
    chosen: tuple[str, ...] = ()  # radios and selects a refused form shows still chosen
    hidden: tuple[str, ...] = ()  # fields the page fills in itself (version numbers), forged or left out
    answers: tuple[int, ...] = (303,)  # what an accepted post gets (or a refusal by redirect, with a message)
    refusal: str = ""  # what a refusal page of its own says; without one, a refusal has an error summary
    special: Callable[[World, Target], dict[str, st.SearchStrategy]] | None = None  # a file, or junk fields
    shown_as: dict[str, Callable[[str], str]] = field(default_factory=dict)  # a field shown tidied, not as typed

    def strategies(self, world: World, target: Target) -> dict[str, st.SearchStrategy]:
        """What Hypothesis may post in each field."""
        if self.special:
            return self.special(world, target)
        fields = {name: typed(*values) for name, values in self.sensible(world, target).items()}
        return {**fields, **{name: hidden_value() for name in self.hidden}}


def nothing(world: World, target: Target) -> Values:
    """A form with no fields of its own, only its button."""
    return {}


def junk(world: World, target: Target) -> dict[str, st.SearchStrategy]:
    """A button's form carries only its token: anything else that arrives must be ignored."""
    return {"extra": HOSTILE_TEXT, "\x00": HOSTILE_TEXT, "csrf_token\x00": HOSTILE_TEXT}


def today() -> dict[str, str]:
    """Today's date as the incident form's three boxes."""
    now = policies.uk_today()
    return {"day": str(now.day), "month": str(now.month), "year": str(now.year)}


BAD_FILES = (
    b"display_name,group\r\nAme\x00lia R.,year-2-ash\r\n",
    b"display_name,group\r\n\xff\xfeA\x00m\x00",
    b'display_name,group\r\n"Amelia R.,year-2-ash\r\n' + b"x" * 5000,
    b"display_name,group\r\n" + b"Amelia R." * 2000 + b",year-2-ash\r\n",
    b"display_name,group\r\n\xe2\x80\xaeAmelia R.,year-2-ash\r\n",
)


def roster_file(world: World, target: Target) -> dict[str, st.SearchStrategy]:
    """A class list: CSV with hostile cells, bytes that are not UTF-8, NUL bytes, a runaway quote."""
    cell = typed(f"Amelia {chr(65 + world.number() % 26)}.", "year-2-ash", "carer@example.com", "")
    rows = st.lists(st.lists(cell, max_size=4), max_size=4)
    header = st.sampled_from(["display_name,group,carer_emails", "display_name", "", "\ufeffdisplay_name,group"])
    csv_text = st.builds(lambda first, body: "\r\n".join([first, *(",".join(row) for row in body)]), header, rows)
    return {"file": st.one_of(
        csv_text.map(lambda text: text.encode("utf-8")),
        st.binary(max_size=200),
        st.sampled_from(BAD_FILES),
    )}


# --- Where each form is: a fresh browser at the right step, or the signed-in moderator or staff


def reagree_link(w: World) -> Target:
    """The emailed 'agree again' link of a member asked to re-agree."""
    membership_id = w.membership()
    w.must_reagree(membership_id)
    with session_scope() as session:
        link = journey.reagree_link(session.get(Membership, membership_id))
    return Target(w.make_browser(), Browser.path(link))


def me_reagree_page(w: World) -> Target:
    """/me/'s 'agree again' page of a signed-in member asked to re-agree."""
    membership_id = w.membership()
    w.must_reagree(membership_id)
    return Target(w.signed_in_parent(membership_id), f"/me/groups/{membership_id}/reagree")


def me_leave_page(w: World) -> Target:
    """/me/'s 'leave this group' page of a signed-in member."""
    membership_id = w.membership()
    return Target(w.signed_in_parent(membership_id), f"/me/groups/{membership_id}/leave")


def login_page(w: World) -> Target:
    """The sign-in page, with the moderator's and staff accounts there to sign in to."""
    w.account(MODERATOR)
    w.account(STAFF, Role.STAFF)
    return Target(w.make_browser(), "/login")


def members_list(path: str) -> Callable[[World], Target]:
    """A button on the members page, for a new member of Year 2 Ash."""
    def target(w: World) -> Target:
        return Target(w.moderator, "/moderate/year-2-ash/members",
                      f"/moderate/year-2-ash/members/{w.membership()}/{path}")
    return target


def pending_request(path: str, *, with_code: bool) -> Callable[[World], Target]:
    """A button on the group page, for a new request waiting in Year 4 Birch."""
    def target(w: World) -> Target:
        membership_id = w.membership("year-4-birch", with_code=with_code)
        return Target(w.moderator, "/moderate/year-4-birch/", f"/moderate/year-4-birch/requests/{membership_id}/{path}")
    return target


def child_page(path: str) -> Callable[[World], Target]:
    """A form on a new child's page."""
    def target(w: World) -> Target:
        child_id = w.code()[0]
        return Target(w.staff, f"/school/children/{child_id}", f"/school/children/{child_id}/{path}")
    return target


def stand_down(w: World) -> Target:
    """The stand-down button of a new moderator of Year 2 Ash."""
    user_id = w.make_account(f"helper{w.number()}@elm.example")
    return Target(w.staff, "/school/groups/year-2-ash/moderators",
                  f"/school/groups/year-2-ash/moderators/{user_id}/stand-down")


def staff_page(page: str, action: str = "") -> Callable[[World], Target]:
    """A form on a staff page."""
    return lambda w: Target(w.staff, page, action)


WHATSAPP = "https://chat.whatsapp.com/AbCdEf1234567890"
TICK = ("y", "on", "")
AGREE = {"agree_coc": TICK, "acknowledge_notice": TICK}

FORMS: list[Form] = [
    # --- The parent journey
    Form("join: code from the letter", lambda w: Target(w.make_browser(), "/join/year-2-ash"),
         lambda w, t: {"code": (w.code()[1], "abcd efgh jkmn", "")},
         typed_in=("code",), reshown=("code",), shown_as={"code": str.strip}),
    Form("join: no code, the child's name", lambda w: Target(w.make_browser(), "/join/year-2-ash/no-code"),
         lambda w, t: {"child_name": ("Amelia R.", "Zoë", "Jean-Luc B.")},
         typed_in=("child_name",), reshown=("child_name",)),
    Form("join: your details", lambda w: Target(w.at_details(), "/join/year-2-ash/details"),
         lambda w, t: {"name": ("Sam Parent", "Zoë O’Brien-Smith", "李小龍"), "relationship": ("parent", "carer"),
                       "email": (f"parent.{w.number()}@example.com", "Carer@Example.CO.UK"),
                       "mobile": ("07911 123456", "+44 7911 123456", "")},
         typed_in=("name", "relationship", "email", "mobile"), reshown=("name", "email", "mobile"),
         chosen=("relationship",),
         answers=(302, 303)),
    Form("join: agree", lambda w: Target(w.at_agree(), "/join/year-2-ash/agree"), lambda w, t: AGREE,
         hidden=("coc_version", "notice_version")),
    Form("join: agree again from the emailed link", reagree_link, lambda w, t: AGREE,
         hidden=("coc_version", "notice_version")),
    Form("join: send the email again", lambda w: Target(w.at_check_email()[0], "/join/year-2-ash/check-email"),
         nothing, special=junk, answers=(200, 303)),
    # --- Parents' own pages
    Form("me: email me a sign-in link", lambda w: Target(w.make_browser(), "/me/"),
         lambda w, t: {"email": ("sam@example.com", "Sam.Parent+class@Example.co.uk", " zoe@example.org ")},
         typed_in=("email",), reshown=("email",)),
    Form("me: agree again", me_reagree_page, lambda w, t: AGREE, hidden=("coc_version", "notice_version")),
    Form("me: erase my details", lambda w: Target(w.signed_in_parent(w.membership()), "/me/erase"),
         lambda w, t: {"understand": TICK}, answers=(200,)),
    Form("me: leave a group", me_leave_page, nothing, special=junk),
    Form("me: sign in with the emailed link", lambda w: Target(w.make_browser(), w.sign_in_link(w.membership())),
         nothing, special=junk),
    Form("me: sign out", lambda w: Target(w.signed_in_parent(w.membership()), "/me/", "/me/sign-out"), nothing,
         special=junk),
    Form("invite: open the group", lambda w: Target(w.make_browser(), f"/invite/{w.invites[w.membership()]}"),
         nothing, special=junk),
    # --- Raising a concern
    Form("concerns: raise a concern", lambda w: Target(w.make_browser(), "/concerns/elm-primary"),
         lambda w, t: {"group": ("none", "unsure", "1", "2"),
                       "what_happened": ("Someone posted a photo of a child.", "First line\r\nSecond line"),
                       "contact_name": ("Sam Parent", ""), "contact_email": ("sam@example.com", ""),
                       "contact_phone": ("07911 123456", "")},
         typed_in=("group", "what_happened", "contact_name", "contact_email", "contact_phone"),
         reshown=("what_happened", "contact_name", "contact_email", "contact_phone"), chosen=("group",)),
    # --- Signing in and passwords
    Form("logout", lambda w: Target(w.account(f"leaving{w.number()}@elm.example"), "/moderate/", "/logout"), nothing,
         special=junk),
    Form("login", login_page,
         lambda w, t: {"email": (MODERATOR, STAFF, "nobody@example.com"), "password": (PASSWORD, "wrong")},
         typed_in=("email",), reshown=("email",)),
    Form("account: choose a password", lambda w: Target(w.make_browser(), w.set_password_link()),
         lambda w, t: {"password": ("a long enough password",), "confirm": ("a long enough password",)},
         answers=(200,)),
    # --- Moderators
    Form("moderate: accept the moderator notice",
         lambda w: Target(w.account(f"first.time{w.number()}@elm.example", accept_notice=False), "/moderate/notice"),
         lambda w, t: {"accept": TICK}, hidden=("version",)),
    Form("moderate: decline a request",
         lambda w: Target(w.moderator, f"/moderate/year-4-birch/requests/{w.membership('year-4-birch')}/reject"),
         lambda w, t: {"reason": ("We could not match the child to the class list.", "Not known"),
                       "tell_parent": TICK},
         typed_in=("reason",), reshown=("reason",)),
    Form("moderate: remove a member",
         lambda w: Target(w.moderator, f"/moderate/year-2-ash/members/{w.membership()}/remove"),
         lambda w, t: {"reason": ("other", "abuse", "grievances"), "note": ("Abusive messages twice.", "")},
         typed_in=("reason", "note"), reshown=("note",), chosen=("reason",)),
    Form("moderate: the chat link", lambda w: Target(w.moderator, "/moderate/year-2-ash/chat-link"),
         lambda w, t: {"url": (f"https://chat.whatsapp.com/AbCdEf{w.number():010d}", WHATSAPP)},
         typed_in=("url",), reshown=("url",)),
    Form("moderate: seen in the chat", members_list("seen"), lambda w, t: {"seen": ("yes", "no")}),
    Form("moderate: approve", pending_request("approve", with_code=True), nothing, special=junk),
    Form("moderate: vouch", pending_request("vouch", with_code=False), nothing, special=junk),
    Form("moderate: send a new link", members_list("reissue"), nothing, special=junk),
    Form("moderate: cancel a link", members_list("revoke"), nothing, special=junk),
    Form("moderate: taken out of the chat", members_list("out-of-chat"), nothing, special=junk),
    # --- School staff: groups and moderators
    Form("school: new group", staff_page("/school/groups/new"),
         lambda w, t: {"name": ("Year 6 Rowan", "Reception Willow"), "description": ("For parents of Year 6.", ""),
                       "academic_year": ("2026-27", "2027-28"), "platform": tuple(p.value for p in Platform),
                       "chat_url": (WHATSAPP, ""), "requires_approval": TICK},
         typed_in=("name", "description", "academic_year", "platform", "chat_url"),
         reshown=("name", "description", "academic_year", "chat_url"), chosen=("platform",)),
    Form("school: edit a group", staff_page("/school/groups/year-4-birch/edit"),
         lambda w, t: {"name": ("Year 4 Birch", "Year 4 Birch and Oak"), "description": ("For Year 4.", ""),
                       "academic_year": ("2026-27",), "platform": ("whatsapp", "signal", "other"),
                       "chat_url": ("https://chat.whatsapp.com/BirchChat2026", ""), "requires_approval": TICK},
         typed_in=("name", "description", "academic_year", "platform", "chat_url"),
         reshown=("name", "description", "academic_year", "chat_url"), chosen=("platform",)),
    Form("school: appoint a moderator", staff_page("/school/groups/year-2-ash/moderators"),
         lambda w, t: {"email": (f"helper{w.number()}@example.com",), "name": ("Pat Helper", "")},
         typed_in=("email", "name"), reshown=("email", "name")),
    Form("school: stand a moderator down", stand_down, nothing, special=junk),
    # --- School staff: class lists, codes, invitations and blocks
    Form("school: import a class list", staff_page("/school/roster", "/school/roster/import"), nothing,
         special=roster_file, answers=(200,)),
    Form("school: download the letters", staff_page("/school/roster", "/school/letters.pdf"), nothing,
         special=lambda w, t: {"letters": HOSTILE_TEXT}, answers=(200,), refusal="These letters cannot be downloaded"),
    Form("school: carers per code", child_page("uses"), lambda w, t: {"uses": ("3", "10", "1")},
         typed_in=("uses",), reshown=("uses",)),
    Form("school: personal invitations", child_page("invitations"),
         lambda w, t: {"emails": (f"carer{w.number()}@example.com", "a@example.com; b@example.com\r\nc@example.com")},
         typed_in=("emails",), reshown=("emails",)),
    Form("school: block a carer", child_page("blocks"),
         lambda w, t: {"email": (f"barred{w.number()}@example.com",), "reason": ("Court order", "Asked by the police")},
         typed_in=("email", "reason"), reshown=("email", "reason")),
    Form("school: lift a block", child_page("blocks/lift"),
         lambda w, t: {"block_id": (str(w.block(int(t.page.rsplit("/", 1)[1]))),)}),
    Form("school: new code", child_page("code"), nothing, special=junk, answers=(200,)),
    # --- School staff: documents, concerns, incidents, the ledger
    Form("school: publish a document", staff_page("/school/policies/code_of_conduct/new"),
         lambda w, t: {"text": (f"# Code of conduct\n\nBe kind ({w.number()}).\n", "Rules:\r\n\r\n- no gossip"),
                       "material": ("minor", "material"), "change_note": ("Clearer wording.", "New rule"),
                       "review_due": ("2031-07-31", "")},
         typed_in=("text", "material", "change_note", "review_due"), reshown=("text", "change_note", "review_due"),
         chosen=("material",), hidden=("based_on",)),
    Form("school: a concern's status", lambda w: Target(w.staff, f"/school/concerns/{w.concern()}"),
         lambda w, t: {"status": ("in_progress", *[s.value for s in ConcernStatus]),
                       "note": ("Spoke to the parent.", "")},
         typed_in=("status", "note"), reshown=("note",), chosen=("status",)),
    Form("school: where concerns go", staff_page("/school/concerns/settings"),
         lambda w, t: {"concerns_email": ("office@elm.example", "head@elm.example"),
                       "complaints_url": ("https://www.elm.example/complaints", "")},
         typed_in=("concerns_email", "complaints_url"), reshown=("concerns_email", "complaints_url")),
    Form("school: record an incident", lambda w: Target(w.staff, f"/school/records/{w.membership()}/incidents/new"),
         lambda w, t: {"action": tuple(a.value for a in IncidentAction), "day": (today()["day"], "1"),
                       "month": (today()["month"], "1"), "year": (today()["year"],),
                       "decided_by": ("Mrs Patel, headteacher", "The governors"),
                       "note": ("Posted a photo of a child twice.", "Line one\r\nLine two", ""),
                       "concern": ("", str(w.concern()))},
         typed_in=("action", "day", "month", "year", "decided_by", "note", "concern"),
         reshown=("day", "month", "year", "decided_by", "note"), chosen=("action", "concern")),
    Form("school: check the ledger", staff_page("/school/ledger"), nothing, special=junk, answers=(200,)),
]


def has_form(page) -> bool:
    """True when a page opened and holds a form to post (one done with shows what happened instead)."""
    return page.status_code == 200 and "csrf_token" in Browser.hidden_fields(page.get_data(as_text=True))


def open_form(world: World, form: Form) -> tuple[Target, object]:
    """The form's target and its page: the last one while its form is still there, else a new one."""
    target = world.targets.get(form.name)
    if target is not None:
        page = target.browser.get(target.page)
        if has_form(page):
            return target, page
    target = form.target(world)
    page = target.browser.get(target.page)
    assert has_form(page), f"{form.name}: {target.page} answered {page.status_code} with no form"
    world.targets[form.name] = target
    return target, page


def payload(page, data: dict) -> dict:
    """What the browser posts: the page's hidden fields (CSRF token, versions) and what was typed."""
    return payload_of(Browser.hidden_fields(page.get_data(as_text=True)), data)


def payload_of(hidden: dict[str, str], data: dict) -> dict:
    """Hidden fields and typed values as a browser posts them (a file's bytes as an upload)."""
    posted = {**hidden, **data}
    posted = {name: value for name, value in posted.items() if value is not DROP}
    if isinstance(posted.get("file"), bytes):
        posted["file"] = (io.BytesIO(posted["file"]), "class.csv")
    return posted


class Poster:
    """Posts to a form and checks what every answer must be, whatever was posted."""

    def __init__(self, db, refused_by_database: list[str]) -> None:
        self.db, self.refused_by_database = db, refused_by_database

    def post(self, form: Form, target: Target, page, data: dict):
        """Post, then check: no server error, nothing the database refuses, and a refusal that is clear."""
        before = database_rows(self.db)
        self.refused_by_database.clear()
        limiter.reset()  # these tests post far more often than any person: the limits have tests of their own
        response = target.browser.client.post(target.action, data=payload(page, data))
        assert response.status_code < 500, f"{form.name}: {response.status_code} for {data!r:.300}"
        assert not self.refused_by_database, self.refused_by_database
        if response.status_code == 400:
            self.check_refusal(form, response, data)
            changed = changed_tables(before, database_rows(self.db))
            assert not changed, f"{form.name}: a refused form changed {changed}"
        else:
            assert response.status_code in form.answers, (
                f"{form.name}: {response.status_code} {text_of(response)[:200]}"
            )
        return response

    @staticmethod
    def check_refusal(form: Form, response, data: dict) -> None:
        """A refused form says what is wrong and shows again what was typed."""
        if form.refusal:
            assert form.refusal in text_of(response), f"{form.name}: {text_of(response)[:300]}"
            return
        messages = error_summary(response)
        assert messages, f"{form.name}: refused without saying why: {text_of(response)[:300]}"
        assert all(message for _, message in messages), messages
        fields = FieldValues(response.get_data(as_text=True))
        for name in form.reshown:
            if isinstance(data.get(name), str):
                expected = form.shown_as.get(name, as_typed)(data[name])
                assert expected in fields.shown(name), f"{form.name}: what was typed in {name!r} is not shown again"
        for name in form.chosen:
            if data.get(name) in fields.options.get(name, ()):
                assert fields.shown(name) == [data[name]], f"{form.name}: the choice in {name!r} is not kept"


def as_typed(value: str) -> str:
    """A field shows exactly what was typed."""
    return value


@pytest.fixture
def poster(db, refused_by_database) -> Poster:
    """Posts to forms and checks every answer."""
    return Poster(db, refused_by_database)


# --- The properties ------------------------------------------------------------------------------------


BUTTONS = [form for form in FORMS if form.special is junk]
WITH_FIELDS = [form for form in FORMS if form.special is not junk]


def post_hostile(form: Form, data: st.DataObject, world: World, poster: Poster) -> None:
    """Open the form and post what Hypothesis draws for it."""
    target, page = open_form(world, form)
    poster.post(form, target, page, data.draw(form_data(form.strategies(world, target)), label="posted"))


@pytest.mark.parametrize("form", WITH_FIELDS, ids=[form.name for form in WITH_FIELDS])
@HOSTILE
@given(data=st.data())
def test_hostile_values_never_break_a_form(form: Form, data: st.DataObject, world: World, poster: Poster) -> None:
    """Random, oversized, control and odd Unicode values, or fields left out: a clear refusal, never a 500."""
    post_hostile(form, data, world, poster)


@pytest.mark.parametrize("form", BUTTONS, ids=[form.name for form in BUTTONS])
@settings(HOSTILE, max_examples=5)  # nothing is read from these forms: a few tries show it stays that way
@given(data=st.data())
def test_a_button_ignores_whatever_else_is_posted(form: Form, data: st.DataObject, world: World,
                                                  poster: Poster) -> None:
    """A button's form (approve, send a new link, stand down…) with junk fields added: they are ignored."""
    post_hostile(form, data, world, poster)


ODD = {
    "NUL": "\x00",
    "10,000 characters": "x" * 10_000,
    "a right-to-left override": "\u202e",
    "emoji with joiners, combining marks, full-width digits": "👨\u200d👩\u200d👧\u200d👦e\u0301\u0302１２",
}
TYPED_FORMS = [form for form in FORMS if form.typed_in]


def error_targets(response) -> list[str]:
    """The fields the error summary links to (a radio's first option, #reason-0, counts as #reason)."""
    return [target.removesuffix("-0") for target, _ in error_summary(response)]


@pytest.mark.parametrize("form", TYPED_FORMS, ids=[form.name for form in TYPED_FORMS])
def test_each_field_refuses_nul_and_survives_odd_unicode(form: Form, world: World, poster: Poster) -> None:
    """Into each field in turn, something odd: NUL is refused at that field; the rest are refused or kept.

    Posted with nothing filled in at all, the form says what is missing.
    """
    target, page = open_form(world, form)
    assert poster.post(form, target, page, {}).status_code == 400, f"{form.name}: accepted with nothing typed"
    for name in form.typed_in:
        for what, odd in ODD.items():
            target, page = open_form(world, form)
            data = {field: values[0] for field, values in form.sensible(world, target).items()}
            data[name] = splice(data[name], odd, 3)
            response = poster.post(form, target, page, data)
            if what == "NUL":
                assert response.status_code == 400, f"{form.name}: NUL in {name} was accepted"
                # The incident form's date is three boxes with one message, on the first.
                assert f"#{'day' if name in ('month', 'year') else name}" in error_targets(response), (
                    f"{form.name}: NUL in {name} was refused without saying so at the field"
                )
    target, page = open_form(world, form)
    sensible = {field: values[0] for field, values in form.sensible(world, target).items()}
    assert poster.post(form, target, page, sensible).status_code in form.answers, "the sensible values are accepted"


@pytest.mark.parametrize(
    ("who", "page", "action", "field"),
    [
        ("anyone", "/concerns/elm-primary", "/concerns/elm-primary", "what_happened"),
        ("anyone", "/join/year-2-ash", "/join/year-2-ash", "code"),
        ("staff", "/school/roster", "/school/roster/import", "file"),
        ("staff", "/school/policies/code_of_conduct/new", "/school/policies/code_of_conduct/new", "text"),
    ],
)
def test_more_than_any_form_needs_is_refused_as_too_large(
    who: str, page: str, action: str, field: str, world: World, db, refused_by_database: list[str]
) -> None:
    """Three megabytes in one field (a pasted book, a huge file): 'too large', and nothing is kept."""
    browser = browser_of(world, who)
    hidden = Browser.hidden_fields(browser.get(page).get_data(as_text=True))
    big = "x" * 3_000_000
    posted = {**hidden, field: FileStorage(io.BytesIO(big.encode()), "class.csv") if field == "file" else big}
    # Encoded here, in memory: the test client would spool three megabytes to a temporary file it never closes.
    boundary, body = encode_multipart(MultiDict(posted))
    before = database_rows(db)

    response = browser.client.post(action, data=body, content_type=f"multipart/form-data; boundary={boundary}")

    assert response.status_code == 413
    assert "That was too large" in text_of(response)
    assert not refused_by_database
    assert not changed_tables(before, database_rows(db))


# --- Addresses and query strings -------------------------------------------------------------------

SEGMENT = st.one_of(HOSTILE_TEXT, st.sampled_from(("9" * 30, "18446744073709551616", "１２", "٣", "0", "-1")))
# Pages whose address names something, and who opens them.
JOIN_PAGES = ("/join/{}", "/join/{}/no-code", "/join/{}/details", "/join/{}/agree", "/join/{}/check-email",
              "/join/{}/waiting", "/join/{}/done")
ADDRESSES = {
    "anyone": (*JOIN_PAGES, "/concerns/{}", "/invite/{}", "/me/sign-in/{}",
               "/join/verify/{}", "/join/reagree/{}", "/account/set-password/{}", "/join/year-2-ash/invitation/{}"),
    "moderator": ("/moderate/{}/", "/moderate/{}/members", "/moderate/{}/chat-link",
                  "/moderate/year-2-ash/members/{}/remove", "/moderate/year-4-birch/requests/{}/reject"),
    "staff": ("/school/groups/{}/edit", "/school/policies/{}", "/school/policies/code_of_conduct/{}",
              "/school/policies/code_of_conduct/{}/diff", "/school/records/{}", "/school/children/{}",
              "/school/concerns/{}", "/school/records/{}/incidents/new"),
    "parent": ("/me/groups/{}/leave", "/me/groups/{}/reagree"),
}


def browser_of(world: World, who: str) -> Browser:
    """A browser for someone: a stranger, the moderator, staff, or a signed-in parent."""
    if who == "parent":
        if "parent" not in world.targets:
            world.targets["parent"] = Target(world.signed_in_parent(world.membership()), "/me/")
        return world.targets["parent"].browser
    return {"anyone": world.make_browser, "moderator": lambda: world.moderator, "staff": lambda: world.staff}[who]()


@pytest.mark.parametrize("who", ADDRESSES)
@HOSTILE
@given(data=st.data())
def test_hostile_addresses_are_not_found(who: str, data: st.DataObject, world: World, db,
                                         refused_by_database: list[str]) -> None:
    """Anything in the part of an address that names a group, token or record: 'not found', never a 500."""
    template = data.draw(st.sampled_from(ADDRESSES[who]), label="page")
    # NUL in a join page's address is the known failure below, left out here so the rest is still tried.
    segments = SEGMENT.filter(lambda text: "\x00" not in text) if template in JOIN_PAGES else SEGMENT
    path = template.format(quote(data.draw(segments, label="segment"), safe=""))
    browser = browser_of(world, who)
    before = database_rows(db)
    refused_by_database.clear()

    response = browser.client.get(path)

    assert response.status_code in (200, 302, 303, 308, 404, 410), f"{path}: {response.status_code}"
    assert not refused_by_database, refused_by_database
    assert not changed_tables(before, database_rows(db))


QUERIES = {
    "/school/records": {"q": typed("Parent", "Zoë"), "group": typed("year-2-ash", ""),
                        "show": typed("reagree", "pending", "removed", "left", ""), "page": typed("2", "1")},
    "/school/records.csv": {"group": typed("year-2-ash", "")},
    "/school/concerns": {"status": typed("new", "in_progress", "closed", "all"), "page": typed("2", "1")},
    "/login": {"next": typed("/school/", "/moderate/")},
}


@pytest.mark.parametrize("page", QUERIES)
@HOSTILE
@given(data=st.data())
def test_hostile_query_strings_never_break_a_page(page: str, data: st.DataObject, world: World, db,
                                                  refused_by_database: list[str]) -> None:
    """Searches, filters and page numbers of any kind: the page or 'not found', and a search shown as typed."""
    world.membership()
    query = data.draw(form_data(QUERIES[page]), label="query")
    browser = world.staff if page.startswith("/school/") else world.make_browser()
    refused_by_database.clear()

    response = browser.client.get(page, query_string=query)
    body = response.get_data()  # a streamed download runs its queries as it is read

    assert response.status_code in (200, 404), f"{page}?{query!r:.200}: {response.status_code}"
    assert not refused_by_database, refused_by_database
    if page == "/school/records" and response.status_code == 200 and "q" in query:
        # Shown as typed, less control characters (NUL cannot even be searched for on PostgreSQL).
        typed_in = "".join(ch for ch in query["q"] if unicodedata.category(ch) not in ("Cc", "Cs"))
        shown = FieldValues(body.decode()).shown("q")
        assert shown == [typed_in.strip()[:80]] or not typed_in.isprintable(), (query, shown)


@pytest.mark.parametrize("template", JOIN_PAGES)
def test_nul_in_a_join_address_is_not_found(template: str, browser: Browser, school, refused_by_database) -> None:
    """/join/%00 is a page that does not exist, like any other unknown group."""
    response = browser.get(template.format("%00"))

    assert response.status_code == 404
    assert not refused_by_database, refused_by_database
