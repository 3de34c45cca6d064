"""What one simulated client does once: a whole parent journey, or one request to a baseline app.

Every response is checked (status, and where a redirect points); anything unexpected raises
StepFailed, which the load generator counts as an error. Nothing is counted as done unless
every one of its requests answered as a real parent's browser would need it to.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import Engine, create_engine, text

from .browser import Browser, Reply

# The steps of a parent journey, in order, as the tables name them.
JOURNEY_STEPS = (
    "join GET", "code POST", "details GET", "details POST", "email link GET",
    "agree GET", "agree POST", "invite GET", "redeem POST",
)
LINK = re.compile(r"https?://\S+")
MOBILE = "07911 123456"

Record = Callable[[str, Reply], None]


class StepFailed(Exception):
    """A response was not what the step needs; the message names the step and what came back."""

    def __init__(self, step: str, reply: Reply | None, expected: str) -> None:
        got = "nothing" if reply is None else f"{reply.status} {reply.location or reply.text[:160]!r}"
        super().__init__(f"{step}: expected {expected}, got {got}")
        self.step = step


class OutOfCodes(Exception):
    """Every enrolment code prepared for this run has been used: the run needs more (--codes)."""


def expect(step: str, reply: Reply, status: int, path: str | None = None) -> Reply:
    """Check a response's status (and, for a redirect, the path it points to); raise StepFailed if not."""
    if reply.status != status or (path is not None and reply.path != path):
        raise StepFailed(step, reply, f"{status}" + (f" to {path}" if path else ""))
    return reply


def form_of(step: str, reply: Reply, *names: str) -> dict[str, str]:
    """The page's hidden fields, which must include a CSRF token and the given names."""
    fields = reply.hidden_fields()
    missing = [name for name in ("csrf_token", *names) if not fields.get(name)]
    if missing:
        raise StepFailed(step, reply, f"a form with {', '.join(missing)}")
    return fields


@dataclass(frozen=True)
class ScenarioSpec:
    """A picklable description of a scenario, built into a Scenario inside each client process."""

    kind: str  # "journey", "constant" or "visit"
    base_url: str
    group_slug: str = ""
    chat_url: str = ""
    database_url: str = ""
    codes: tuple[str, ...] = field(default=(), repr=False)
    think_s: float = 0.0  # the mean pause before a journey and after each page, as a parent reads it
    run: int = 0  # which of several runs with these codes' group: parents' emails differ between runs

    def share(self, index: int, parts: int) -> ScenarioSpec:
        """This spec for client process `index` of `parts`: its own slice of the codes."""
        return replace(self, codes=self.codes[index::parts])

    def build(self, process: int) -> Scenario:
        """The scenario this spec describes."""
        if self.kind == "journey":
            return JourneyScenario(self, process)
        if self.kind == "constant":
            return ConstantScenario()
        if self.kind == "visit":
            return VisitScenario()
        raise ValueError(f"unknown scenario {self.kind!r}")


class Scenario:
    """One unit of work for one client: run() makes its requests, records each, checks each."""

    steps: tuple[str, ...] = ()

    def run(self, browser: Browser, ticket: int, record: Record) -> None:
        """Do the unit numbered `ticket`; raise StepFailed if any response is wrong."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the scenario holds (database connections)."""


class ConstantScenario(Scenario):
    """GET / of the minimal Flask app: 200 and its constant text."""

    steps = ("GET /",)

    def run(self, browser: Browser, ticket: int, record: Record) -> None:
        """One request."""
        reply = browser.get("/")
        record("GET /", reply)
        if expect("GET /", reply, 200).body != b"Hello from Flask":
            raise StepFailed("GET /", reply, "the constant text")


class VisitScenario(Scenario):
    """POST /visit/<key> of the minimal SQLModel app: one indexed SELECT and one INSERT."""

    steps = ("POST /visit",)
    KEYS = 1000

    def run(self, browser: Browser, ticket: int, record: Record) -> None:
        """One request, for one of a thousand keys."""
        key = f"k{ticket % self.KEYS}"
        reply = browser.post(f"/visit/{key}")
        record("POST /visit", reply)
        if not expect("POST /visit", reply, 200).body.startswith(f'{{"key":"{key}"'.encode()):
            raise StepFailed("POST /visit", reply, "the visit as JSON")


class JourneyScenario(Scenario):
    """A parent's whole journey, from the join page to the 303 into the group chat."""

    steps = JOURNEY_STEPS

    def __init__(self, spec: ScenarioSpec, process: int) -> None:
        self.spec = spec
        self.process = process
        self.engine = outbox_engine(spec.database_url)
        # Seeded, so a run's pauses are the same every time; one stream per client process.
        self.pauses = random.Random(process)  # noqa: S311 - pacing, not a secret

    def pause(self) -> None:
        """A parent's pause: between half and one and a half times think_s, so clients drift apart.

        Equal pauses would keep every client in step for the whole run: sixteen parents pressing
        "I agree" within the same millisecond, again and again, which is a stampede, not a class.
        """
        if self.spec.think_s:
            time.sleep(self.spec.think_s * self.pauses.uniform(0.5, 1.5))

    def run(self, browser: Browser, ticket: int, record: Record) -> None:
        """Join with the ticket's code as a new parent (fresh cookies, same kept-alive connection)."""
        if ticket >= len(self.spec.codes):
            raise OutOfCodes(f"all {len(self.spec.codes)} codes of this client process are used")
        slug = self.spec.group_slug
        join, details, agree = f"/join/{slug}", f"/join/{slug}/details", f"/join/{slug}/agree"
        email = f"parent-{self.spec.run}-{self.process}-{ticket}@bench.example.com"
        browser.cookies.clear()
        self.pause()  # a parent opens the link from the letter when they get to it

        def step(name: str, reply: Reply) -> Reply:
            record(name, reply)
            self.pause()  # after the timing: the pause is the parent's, not the server's
            return reply

        page = expect("join GET", step("join GET", browser.get(join)), 200)
        fields = form_of("join GET", page)
        expect("code POST", step("code POST", browser.post(join, {**fields, "code": self.spec.codes[ticket]})),
               303, details)
        page = expect("details GET", step("details GET", browser.get(details)), 200)
        form = {**form_of("details GET", page), "name": "Sam Parent", "relationship": "parent", "email": email,
                "mobile": MOBILE}
        expect("details POST", step("details POST", browser.post(details, form)), 302, f"/join/{slug}/check-email")
        link = self.verify_link(email)
        expect("email link GET", step("email link GET", browser.get(link)), 302, agree)
        page = expect("agree GET", step("agree GET", browser.get(agree)), 200)
        form = {**form_of("agree GET", page, "coc_version", "notice_version"), "agree_coc": "y",
                "acknowledge_notice": "y"}
        agreed = expect("agree POST", step("agree POST", browser.post(agree, form)), 303)
        invite = agreed.path
        if not invite.startswith("/invite/"):
            raise StepFailed("agree POST", agreed, "303 to /invite/<token>")
        page = expect("invite GET", step("invite GET", browser.get(invite)), 200)
        if self.spec.chat_url in page.text:
            raise StepFailed("invite GET", page, "a page that does not show the chat link before redemption")
        redeemed = expect("redeem POST", step("redeem POST", browser.post(invite, form_of("invite GET", page))), 303)
        if redeemed.location != self.spec.chat_url:
            raise StepFailed("redeem POST", redeemed, f"303 to {self.spec.chat_url}")

    def verify_link(self, email: str) -> str:
        """The confirmation link just queued for this email, read from the outbox (no mail is sent)."""
        with self.engine.connect() as connection:
            body = connection.execute(
                text("SELECT body_text FROM outbox_message WHERE to_addr = :to AND kind = 'verify-email' "
                     "ORDER BY id DESC LIMIT 1"),
                {"to": email},
            ).scalar()
        match = LINK.search(body or "")
        if match is None:
            raise StepFailed("details POST", None, f"a verify-email message to {email} in the outbox")
        return match.group(0)

    def close(self) -> None:
        """Close the outbox connections."""
        self.engine.dispose()


def outbox_engine(url: str) -> Engine:
    """A plain engine to read the outbox: psycopg for PostgreSQL, the file for SQLite."""
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        return create_engine(url, pool_size=4, max_overflow=16)
    return create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
