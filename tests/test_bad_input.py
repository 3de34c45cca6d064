"""Wrong, malformed, forged, replayed and out-of-order input to the parent journey.

Every refusal must be a clear page with the right status, and must leave the database exactly as
it was: no membership, person, ledger entry, invite or email, and no code use taken.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from itsdangerous.timed import TimestampSigner
from sqlalchemy import update
from sqlmodel import Session, select

from membership import codes, invites, policies
from membership.db import session_scope
from membership.join.routes import CODE_REFUSED
from membership.models import (
    Child,
    DocumentKind,
    Group,
    Invite,
    LedgerEntry,
    Membership,
    Person,
    School,
    Status,
    utcnow,
)

from .conftest import DETAILS, Browser, csrf_token, error_summary, link_in, outbox, snapshot, text_of

ASH = "/join/year-2-ash"
ASH_CHAT = "https://chat.whatsapp.com/AshChat"



def ledger_actions(db) -> list[str]:
    """The ledger's actions, oldest first."""
    db.commit()
    return [entry.action for entry in db.exec(select(LedgerEntry).order_by(LedgerEntry.id))]


def one_character_changed(text: str, at: int) -> str:
    """The same text with the character at `at` replaced by a different letter or digit."""
    old = text[at]
    new = "B" if old != "B" else "C"
    return text[:at] + new + text[at + 1 :]


@dataclass
class Ctx:
    """What a case's setup needs to arrange the world before the bad input arrives."""

    make_code: Callable[..., str]
    make_child: Callable[..., tuple[int, str]]
    make_browser: Callable[[], Browser]


@pytest.fixture
def ctx(make_code, make_child, make_browser) -> Ctx:
    """Factories for setting up a case."""
    return Ctx(make_code, make_child, make_browser)


def _revoked_code(ctx: Ctx) -> str:
    child_id, old_code = ctx.make_child()
    with session_scope() as session:
        codes.issue_code(session, session.get(Child, child_id))  # the school re-generated the letter
    return old_code


def _used_up_code(ctx: Ctx, uses_allowed: int = 1) -> str:
    code = ctx.make_code(uses_allowed=uses_allowed)
    for _ in range(uses_allowed):
        other = ctx.make_browser()
        assert other.submit(ASH, {"code": code}).status_code == 303
        other.submit(f"{ASH}/details", {**DETAILS, "email": f"carer-{uuid.uuid4().hex[:8]}@example.com"})
        assert other.last.status_code == 302
    return code


CODE_REFUSALS: dict[str, Callable[[Ctx], str]] = {
    "unknown": lambda ctx: "ZZZZ-ZZZZ-ZZZZ",
    "one character wrong": lambda ctx: one_character_changed(ctx.make_code(), 5),
    "too short": lambda ctx: "ABCD-EFGH",
    "thirteen characters": lambda ctx: "ABCD-EFGH-JKMNP",
    "letter U is not in codes": lambda ctx: "ABCD-EFGH-JKMU",
    "punctuation": lambda ctx: "!!!!-????-####",
    "markup": lambda ctx: "<b>ABCD</b>",
    "another group's code": lambda ctx: ctx.make_code("year-4-birch"),
    "revoked after a new letter": _revoked_code,
    "all uses taken (1 of 1)": _used_up_code,
    "all uses taken (2 of 2)": lambda ctx: _used_up_code(ctx, 2),
}


@pytest.mark.parametrize("case", CODE_REFUSALS)
def test_refused_code_gets_the_generic_message_and_changes_nothing(
    case: str, ctx: Ctx, browser: Browser, db: Session
) -> None:
    """A wrong, malformed, foreign, revoked or used-up code: 400, the one generic message, nothing kept."""
    typed = CODE_REFUSALS[case](ctx)
    before = snapshot(db)

    page = browser.submit(ASH, {"code": typed})

    assert page.status_code == 400
    assert text_of(page).startswith("Error: Join Year 2 Ash")  # the page title says so for screen readers
    assert error_summary(page) == [("#code", CODE_REFUSED)]
    assert f"Error: {CODE_REFUSED}" in text_of(page)  # and again beside the box
    assert "There is a problem" in text_of(page)
    assert "Location" not in page.headers
    assert snapshot(db) == before
    # The refused code did not open the next step either.
    assert browser.get(f"{ASH}/details").status_code == 302


def test_every_refused_code_shows_exactly_the_same_page(ctx: Ctx, make_browser: Callable[[], Browser]) -> None:
    """Nothing on the page tells a guesser whether a code exists, is used up, revoked or for another class."""
    pages = {}
    for case, setup in CODE_REFUSALS.items():
        typed = setup(ctx)
        pages[case] = text_of(make_browser().submit(ASH, {"code": typed}))
    assert len(set(pages.values())) == 1, pages


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter the code from the school letter"),
        ("   ", "Enter the code from the school letter"),
        ("A" * 41, "That code is too long"),
    ],
    ids=["empty", "spaces only", "41 characters"],
)
def test_missing_or_overlong_code_is_refused(
    typed: str, message: str, browser: Browser, db: Session, make_code: Callable[..., str]
) -> None:
    """No code, or far too much typed: 400 with a message linking to the code box, nothing kept."""
    make_code()
    before = snapshot(db)
    page = browser.submit(ASH, {"code": typed})
    assert page.status_code == 400
    assert error_summary(page) == [("#code", message)]
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "typed",
    [
        "a0b1-c0d1-efgh",
        "aobi codl efgh",
        "AOBL-COD1-EFGH",
        "  a o b i c o d l e f g h  ",
        "AOBI—CODL—EFGH",
        "aobi.codl.efgh",
        "AOBICODLEFGH",
    ],
)
def test_code_typed_loosely_is_accepted(
    typed: str, monkeypatch: pytest.MonkeyPatch, browser: Browser, db: Session, make_code: Callable[..., str]
) -> None:
    """Lower case, spaces, dashes and O/0, I/L/1 mix-ups still open the next step."""
    monkeypatch.setattr(codes, "generate", lambda: "A0B1C0D1EFGH")
    make_code()
    before = snapshot(db)

    response = browser.submit(ASH, {"code": typed})

    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{ASH}/details")
    assert snapshot(db) == before  # a use is only taken with the parent's details
    browser.submit(f"{ASH}/details", DETAILS)
    db.commit()
    assert db.exec(select(codes.EnrolmentCode)).one().uses_taken == 1


# --- One-time invites into the chat -------------------------------------------------------------


@pytest.fixture
def invite_url(journey) -> str:
    """A parent's fresh invite link (path), straight after agreeing."""
    agreed = journey.through_agree()
    assert agreed.status_code == 303
    return agreed.headers["Location"]


def _the_membership(session) -> Membership:
    return session.exec(select(Membership)).one()


def _used(ctx, url):
    assert ctx.browser.submit(url).status_code == 303
    return url


def _expired_row(ctx, url):
    with session_scope() as session:
        session.exec(update(Invite).values(expires_at=utcnow() - timedelta(minutes=1)))
    return url


def _expired_token(ctx, url):
    later = TimestampSigner.get_timestamp(TimestampSigner("x")) + 73 * 3600
    ctx.monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    return url


def _revoked(ctx, url):
    with session_scope() as session:
        assert invites.revoke(session, _the_membership(session), actor="user:1", channel="moderator") == 1
    return url


def _superseded(ctx, url):
    with session_scope() as session:
        invites.issue(session, _the_membership(session), actor="user:1", channel="moderator")
    return url


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _tampered(ctx, url):
    token = _token(url)
    return f"/invite/{one_character_changed(token, len(token) // 3)}"


def _truncated(ctx, url):
    return url[:-6]


def _verify_token(ctx, url):
    message = outbox(ctx.db, kind="verify-email")[-1]
    return f"/invite/{_token(link_in(message))}"


@dataclass
class InviteCtx:
    """What an invite case's setup may use."""

    browser: Browser
    db: object
    monkeypatch: pytest.MonkeyPatch


UNUSABLE = {
    "already used": (_used, 410, "This link has already been used"),
    "expired (row)": (_expired_row, 410, "This link has expired"),
    "expired (token age)": (_expired_token, 410, "This link has expired"),
    "revoked by a moderator": (_revoked, 410, "This link has been cancelled"),
    "replaced by a newer link": (_superseded, 410, "This link has been cancelled"),
    "one character changed": (_tampered, 404, "This link is not valid"),
    "cut short": (_truncated, 404, "This link is not valid"),
    "random garbage": (lambda ctx, url: "/invite/not-a-real-token", 404, "This link is not valid"),
    "long garbage": (lambda ctx, url: "/invite/" + "A" * 600, 404, "This link is not valid"),
    "email-confirmation token": (_verify_token, 404, "This link is not valid"),
}

# Links that were really sent (their rows exist), as against forged, damaged or too-old tokens.
GENUINE = {"already used", "expired (row)", "revoked by a moderator", "replaced by a newer link"}


@pytest.mark.parametrize("case", UNUSABLE)
def test_unusable_invite_says_what_happened_and_never_opens_the_chat(
    case: str, invite_url: str, browser: Browser, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Used, expired, revoked or forged links: a clear page on GET and POST, no chat link, nothing used."""
    setup, status, heading = UNUSABLE[case]
    url = setup(InviteCtx(browser, db, monkeypatch), invite_url)
    before = snapshot(db)
    # A genuine link that can no longer be used says which group it was for; a broken one cannot.
    names_group = case in GENUINE

    shown = browser.get(url)
    assert shown.status_code == status
    assert heading in text_of(shown)
    assert ("Year 2 Ash" in text_of(shown)) == names_group
    assert "Open the group" not in text_of(shown)
    assert "AshChat" not in shown.get_data(as_text=True)

    posted = browser.client.post(url, data={"csrf_token": csrf_token(browser)})
    assert posted.status_code == status
    assert heading in text_of(posted)
    assert ("Year 2 Ash" in text_of(posted)) == names_group
    assert "Location" not in posted.headers
    assert "AshChat" not in posted.get_data(as_text=True)

    assert snapshot(db) == before
    assert ledger_actions(db).count("invite_redeem") == (1 if case == "already used" else 0)


def test_looking_at_an_invite_never_uses_it(
    invite_url: str, browser: Browser, make_browser: Callable[[], Browser], db: Session
) -> None:
    """Link previews and mail scanners may fetch the link any number of times; it still opens once."""
    before = snapshot(db)
    for reader in (browser, make_browser(), make_browser()):
        page = reader.get(invite_url)
        assert page.status_code == 200
        assert "Open the group" in text_of(page)
        assert "AshChat" not in page.get_data(as_text=True)
    assert snapshot(db) == before
    assert browser.submit(invite_url).headers["Location"] == ASH_CHAT


def test_invite_posted_twice_opens_the_chat_once(invite_url: str, browser: Browser, db: Session) -> None:
    """A double tap: the first press opens the chat, the second says the link was used."""
    token = csrf_token(browser, invite_url)
    first = browser.client.post(invite_url, data={"csrf_token": token})
    second = browser.client.post(invite_url, data={"csrf_token": token})
    assert first.status_code == 303 and first.headers["Location"] == ASH_CHAT
    assert second.status_code == 410 and "already been used" in text_of(second)
    assert ledger_actions(db).count("invite_redeem") == 1


# --- CSRF on every POST of the journey ----------------------------------------------------------


def _post_code(journey, ctx):
    return ASH, {"code": ctx.make_code()}


def _post_no_code(journey, ctx):
    return f"{ASH}/no-code", {"child_name": "Amelia R."}


def _post_details(journey, ctx):
    journey.code()
    return f"{ASH}/details", dict(DETAILS)


def _post_resend(journey, ctx):
    journey.code()
    journey.details()
    return f"{ASH}/check-email", {}


def _post_agree(journey, ctx):
    journey.code()
    journey.details()
    journey.verify()
    hidden = Browser.hidden_fields(journey.browser.get(f"{ASH}/agree").get_data(as_text=True))
    hidden.pop("csrf_token")
    return f"{ASH}/agree", {**hidden, "agree_coc": "y", "acknowledge_notice": "y"}


def _post_invite(journey, ctx):
    return journey.through_agree().headers["Location"], {}


CSRF_POSTS = {
    "code": _post_code,
    "no code": _post_no_code,
    "details": _post_details,
    "resend email": _post_resend,
    "agree": _post_agree,
    "open the group": _post_invite,
}


@pytest.mark.parametrize("forged", [None, "forged-token", ""], ids=["missing", "forged", "empty"])
@pytest.mark.parametrize("step", CSRF_POSTS)
def test_post_without_a_valid_csrf_token_is_refused(
    step: str, forged: str | None, journey: Any, ctx: Ctx, browser: Browser, db: Session
) -> None:
    """A form posted from elsewhere (or a stale page) gets 'Please try again' and nothing is saved."""
    url, data = CSRF_POSTS[step](journey, ctx)
    if forged is not None:
        data["csrf_token"] = forged
    before = snapshot(db)

    response = browser.client.post(url, data=data)

    assert response.status_code == 400
    assert "Please try again" in text_of(response)
    assert "nothing was saved" in text_of(response)
    assert "AshChat" not in response.get_data(as_text=True)
    assert "Location" not in response.headers
    assert snapshot(db) == before


# --- Steps out of order -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_agree_before_confirming_email_goes_back_to_check_email(
    method: str, journey: Any, browser: Browser, db: Session, school: School
) -> None:
    """Straight from the details page to /agree: sent back to 'Check your email', nothing recorded."""
    journey.code()
    journey.details()
    before = snapshot(db)
    if method == "GET":
        response = browser.get(f"{ASH}/agree")
    else:
        db.commit()
        coc = policies.current(db, school.id, DocumentKind.CODE_OF_CONDUCT)
        notice = policies.current(db, school.id, DocumentKind.DATA_NOTICE)
        response = browser.client.post(
            f"{ASH}/agree",
            data={
                "csrf_token": csrf_token(browser, f"{ASH}/check-email"),
                "coc_version": coc.id,
                "notice_version": notice.id,
                "agree_coc": "y",
                "acknowledge_notice": "y",
            },
        )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{ASH}/check-email")
    page = browser.get(response.headers["Location"])
    assert "Confirm your email address first" in text_of(page)
    assert "Check your email" in text_of(page)
    assert snapshot(db) == before
    assert "agree" not in ledger_actions(db)


@pytest.mark.parametrize("step", ["details", "check-email", "agree", "waiting", "done"])
def test_typing_a_later_step_without_starting_goes_to_the_join_page(
    step: str, browser: Browser, db: Session, make_code: Callable[..., str]
) -> None:
    """A fresh phone typing /details, /agree, /waiting or /done lands on the join page, nothing kept."""
    make_code()
    before = snapshot(db)
    response = browser.get(f"{ASH}/{step}")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(ASH)
    page = browser.get(ASH)
    assert page.status_code == 200
    if step in ("details", "agree"):
        assert "Start by entering the code from the school letter" in text_of(page)
    assert snapshot(db) == before


@pytest.mark.parametrize("step", ["waiting", "done"])
def test_skipping_agree_after_verifying_goes_back_to_agree(
    step: str, journey: Any, browser: Browser, db: Session
) -> None:
    """A verified parent who types /waiting or /done is sent back to agree; no invite, no agreement."""
    journey.code()
    journey.details()
    journey.verify()
    before = snapshot(db)
    response = browser.get(f"{ASH}/{step}")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{ASH}/agree")
    assert snapshot(db) == before
    db.commit()
    assert _the_membership(db).status == Status.EMAIL_VERIFIED
    assert db.exec(select(Invite)).all() == []
    assert not {"agree", "acknowledge", "invite_issue"} & set(ledger_actions(db))


@pytest.mark.parametrize("step", ["waiting", "done", "agree"])
def test_skipping_ahead_before_verifying_goes_back_to_check_email(
    step: str, journey: Any, browser: Browser, db: Session
) -> None:
    """Before the email is confirmed, every later step leads back to 'Check your email'."""
    journey.code()
    journey.details()
    before = snapshot(db)
    response = browser.get(f"{ASH}/{step}")
    assert response.headers["Location"].endswith(f"{ASH}/check-email")
    assert snapshot(db) == before


def test_a_code_for_one_group_does_not_open_another_groups_details(journey: Any, browser: Browser, db: Session) -> None:
    """Progress in Year 2 Ash does not count at Year 4 Birch."""
    journey.code()
    before = snapshot(db)
    response = browser.get("/join/year-4-birch/details")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/join/year-4-birch")
    posted = browser.client.post("/join/year-4-birch/details", data={**DETAILS, "csrf_token": csrf_token(browser)})
    assert posted.status_code == 302
    assert snapshot(db) == before


def test_unknown_group_is_page_not_found(browser: Browser, db: Session, school: School,
                                        make_code: Callable[..., str]) -> None:
    """A mistyped join address: 404 'Page not found', nothing kept, even with a real code sent to it."""
    code = make_code()
    before = snapshot(db)
    for url in ("/join/year-9-nowhere", "/join/year-9-nowhere/details", "/join/year-9-nowhere/no-code"):
        page = browser.get(url)
        assert page.status_code == 404
        assert "Page not found" in text_of(page)
    posted = browser.client.post("/join/year-9-nowhere", data={"code": code, "csrf_token": csrf_token(browser)})
    assert posted.status_code == 404
    assert "Page not found" in posted.get_data(as_text=True)
    assert snapshot(db) == before


# --- Your details ------------------------------------------------------------------------------


DETAIL_ERRORS = {
    "name 81 characters": ({"name": "S" * 81}, "#name", "Your name must be 80 characters or fewer"),
    "name with NUL": ({"name": "Sam\x00"}, "#name", "Your name must only include letters"),
    "name with right-to-left override": ({"name": "Sam\u202eParent"}, "#name", "Your name must only include letters"),
    "name with a line break": ({"name": "Sam\nParent"}, "#name", "Your name must only include letters"),
    "name empty": ({"name": ""}, "#name", "Enter your name"),
    "name only spaces": ({"name": "    "}, "#name", "Enter your name"),
    "name without letters": ({"name": "12345"}, "#name", "Your name must include letters"),
    "email not an address": ({"email": "sam-at-example.com"}, "#email", "Enter an email address in the correct format"),
    "email without a dot": ({"email": "sam@example"}, "#email", "Enter an email address in the correct format"),
    "email empty": ({"email": ""}, "#email", "Enter your email address"),
    "email with a control character": ({"email": "sam\x07@example.com"}, "#email", "in the correct format"),
    "email far too long": ({"email": "s" * 250 + "@example.com"}, "#email", "in the correct format"),
    "mobile too short": ({"mobile": "12345"}, "#mobile", "Enter a mobile number"),
    "mobile letters": ({"mobile": "call me"}, "#mobile", "Enter a mobile number"),
    "mobile is a landline": ({"mobile": "020 7946 0018"}, "#mobile", "Enter a mobile number, not a landline"),
    "mobile far too long": ({"mobile": "0" * 40}, "#mobile", "Enter a mobile number"),
    "relationship missing": (
        {"relationship": None},
        "#relationship-0",
        "Select whether you are the child’s parent or carer",
    ),
    "relationship not offered": (
        {"relationship": "neighbour"},
        "#relationship-0",
        "Select whether you are the child’s parent or carer",
    ),
}


@pytest.mark.parametrize("case", DETAIL_ERRORS)
def test_bad_details_are_refused_with_an_error_linking_to_the_field(
    case: str, journey: Any, browser: Browser, db: Session
) -> None:
    """Each bad answer: 400, an error summary linking to its field, no person, membership, email or code use."""
    overrides, anchor, message = DETAIL_ERRORS[case]
    journey.code()
    before = snapshot(db)
    data = {**DETAILS, **overrides}
    data = {key: value for key, value in data.items() if value is not None}

    page = browser.submit(f"{ASH}/details", data)

    assert page.status_code == 400
    assert "There is a problem" in text_of(page)
    ((target, shown),) = error_summary(page)
    assert target == anchor and message in shown
    assert page.get_data(as_text=True).startswith("<!doctype html>")
    assert snapshot(db) == before
    # The parent can correct it and carry on.
    assert browser.submit(f"{ASH}/details", DETAILS).status_code == 302
    assert snapshot(db)["people"] == before["people"] + 1


def test_every_bad_detail_at_once_lists_each_field(journey: Any, browser: Browser, db: Session) -> None:
    """All four questions wrong: one summary naming each, in page order."""
    journey.code()
    before = snapshot(db)
    page = browser.submit(f"{ASH}/details", {"name": "", "email": "nope", "mobile": "123"})
    assert page.status_code == 400
    assert [target for target, _ in error_summary(page)] == ["#name", "#relationship-0", "#email", "#mobile"]
    assert snapshot(db) == before


CHILD_NAME_ERRORS = {
    "full surname": ("Amelia Robinson", "only the first letter of their surname"),
    "empty": ("", "Enter the child's first name"),
    "spaces": ("   ", "Enter the child's first name"),
    "NUL": ("Amelia\x00", "must only include letters"),
    "right-to-left override": ("Amelia\u202e R.", "must only include letters"),
    "41 characters": ("A" * 41, "40 characters or fewer"),
    "markup": ("<b>Amelia</b>", "must only include letters"),
    "digits": ("Amelia 2", "must only include letters"),
    "initial then surname": ("Amelia R. Smith", ""),
}


@pytest.mark.parametrize("case", CHILD_NAME_ERRORS)
def test_bad_child_name_without_a_code_is_refused(case: str, browser: Browser, db: Session, school: School) -> None:
    """Naming the child wrongly (full surname, nothing, odd characters): 400 linking to the box, nothing kept."""
    typed, message = CHILD_NAME_ERRORS[case]
    before = snapshot(db)
    page = browser.submit(f"{ASH}/no-code", {"child_name": typed})
    assert page.status_code == 400
    ((target, shown),) = error_summary(page)
    assert target == "#child_name" and message in shown
    assert snapshot(db) == before
    assert browser.get(f"{ASH}/details").status_code == 302  # still no way on to the details step


def test_longest_child_name_with_an_initial_is_refused_not_cut(browser: Browser, db: Session, school: School) -> None:
    """40 characters ending in an initial would be 41 with its full stop: refused clearly, never a crash."""
    before = snapshot(db)
    response = browser.submit(f"{ASH}/no-code", {"child_name": "A" * 38 + " R"})
    assert response.status_code == 400
    assert error_summary(response) == [("#child_name", "The child's name must be 40 characters or fewer")]
    assert snapshot(db) == before


def test_child_name_just_inside_the_limit_is_stored_whole(browser: Browser, db: Session, school: School) -> None:
    """39 characters plus the full stop after the initial fits exactly, and is stored as shown."""
    assert browser.submit(f"{ASH}/no-code", {"child_name": "A" * 37 + " R"}).status_code == 303
    assert browser.submit(f"{ASH}/details", DETAILS).status_code == 302
    db.commit()
    assert _the_membership(db).claimed_child_name == "A" * 37 + " R."


# --- Agree -------------------------------------------------------------------------------------


@pytest.fixture
def verified(journey: Any) -> None:
    """A parent whose email is confirmed, on the agree step."""
    journey.code()
    journey.details()
    journey.verify()


@pytest.mark.parametrize(
    ("ticked", "missing"),
    [
        ({"agree_coc": "y"}, ["#acknowledge_notice"]),
        ({"acknowledge_notice": "y"}, ["#agree_coc"]),
        ({}, ["#agree_coc", "#acknowledge_notice"]),
        ({"agree_coc": "", "acknowledge_notice": ""}, ["#agree_coc", "#acknowledge_notice"]),
    ],
    ids=["only code of conduct", "only data notice", "neither", "both empty"],
)
def test_agree_needs_both_boxes(
    ticked: dict, missing: list[str], verified: None, browser: Browser, db: Session
) -> None:
    """Leaving a box unticked: 400, an error for that box, nothing in the ledger, no invite."""
    before = snapshot(db)
    page = browser.submit(f"{ASH}/agree", ticked)
    assert page.status_code == 400
    messages = {
        "#agree_coc": "Tick the box to agree to the code of conduct",
        "#acknowledge_notice": "Tick the box to confirm you have read the data notice",
    }
    assert error_summary(page) == [(target, messages[target]) for target in missing]
    assert snapshot(db) == before
    db.commit()
    assert _the_membership(db).status == Status.EMAIL_VERIFIED


@pytest.mark.parametrize("kind", [DocumentKind.CODE_OF_CONDUCT, DocumentKind.DATA_NOTICE])
def test_documents_updated_while_reading(
    kind: DocumentKind, verified: None, browser: Browser, db: Session, school: School
) -> None:
    """A new version published between reading and agreeing: back to the page with the new text, nothing kept."""
    page = browser.get(f"{ASH}/agree")
    form = Browser.hidden_fields(page.get_data(as_text=True))
    with session_scope() as session:
        policies.publish(session, school.id, kind, "# Updated\n\nA brand new rule about kindness.", material=True)
    before = snapshot(db)

    response = browser.client.post(f"{ASH}/agree", data={**form, "agree_coc": "y", "acknowledge_notice": "y"})

    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{ASH}/agree")
    assert snapshot(db) == before
    again = browser.get(response.headers["Location"])
    assert "The documents were updated while you were reading" in text_of(again)
    assert "A brand new rule about kindness." in text_of(again)
    assert "(version 2," in text_of(again)
    # Agreeing now records the new version.
    assert browser.submit(f"{ASH}/agree", {"agree_coc": "y", "acknowledge_notice": "y"}).status_code == 303
    db.commit()
    entry = db.exec(select(LedgerEntry).where(LedgerEntry.document_kind == kind.value)).one()
    assert entry.document_version == 2


def test_documents_updated_then_a_box_missed_still_agrees_to_the_new_version(
    verified: None, browser: Browser, db: Session, school: School
) -> None:
    """A stale page, then a missed box: the corrected page carries the new version and agreeing works."""
    page = browser.get(f"{ASH}/agree")
    form = Browser.hidden_fields(page.get_data(as_text=True))
    with session_scope() as session:
        policies.publish(session, school.id, DocumentKind.CODE_OF_CONDUCT, "# Version two\n\nBe kind.", material=True)

    missed = browser.client.post(f"{ASH}/agree", data={**form, "agree_coc": "y"})
    assert missed.status_code == 400
    assert "Be kind." in text_of(missed)
    corrected = Browser.hidden_fields(missed.get_data(as_text=True))

    agreed = browser.client.post(f"{ASH}/agree", data={**corrected, "agree_coc": "y", "acknowledge_notice": "y"})
    assert agreed.status_code == 303
    assert "/invite/" in agreed.headers["Location"]
    db.commit()
    entry = db.exec(select(LedgerEntry).where(LedgerEntry.action == "agree")).one()
    assert entry.document_version == 2


@pytest.mark.parametrize(
    "versions",
    [
        {"coc_version": "abc"},
        {"coc_version": "", "notice_version": ""},
        {"notice_version": "999999"},
        {"coc_version": "-1"},
    ],
    ids=["not a number", "empty", "unknown version", "negative"],
)
def test_agree_with_tampered_versions_records_nothing(
    versions: dict, verified: None, browser: Browser, db: Session
) -> None:
    """Hidden document versions changed by hand: no crash, no agreement recorded."""
    before = snapshot(db)
    response = browser.submit(f"{ASH}/agree", {"agree_coc": "y", "acknowledge_notice": "y", **versions})
    assert response.status_code in (303, 400)
    if response.status_code == 303:
        assert response.headers["Location"].endswith(f"{ASH}/agree")
    assert snapshot(db) == before


# --- Rate limits -------------------------------------------------------------------------------


class TestCodeRateLimits:
    """Guessing codes is slowed per phone and per class group."""

    @pytest.fixture
    def config(self, config: dict) -> dict:
        """Small limits so the tests reach them."""
        return {**config, "CODE_LIMIT_PER_CLIENT": "3 per minute", "CODE_LIMIT_PER_GROUP": "5 per minute"}

    @staticmethod
    def phone(make_browser, address: str) -> Browser:
        """A phone on its own network address."""
        browser = make_browser()
        browser.client.environ_base["REMOTE_ADDR"] = address
        return browser

    def test_fourth_wrong_code_from_one_phone_is_paused(
        self, make_browser: Callable[[], Browser], make_code: Callable[..., str], db: Session
    ) -> None:
        """Three wrong codes are answered; the fourth gets 'Too many attempts' (429) and nothing changes."""
        phone = self.phone(make_browser, "10.0.0.1")
        code = make_code()
        before = snapshot(db)
        for _ in range(3):
            assert phone.submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZZ"}).status_code == 400
        paused = phone.submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZZ"})
        assert paused.status_code == 429
        assert "Too many attempts" in text_of(paused)
        assert "wait a while and try again" in text_of(paused)
        # Even the right code waits now, and nothing was stored.
        assert phone.submit(ASH, {"code": code}).status_code == 429
        assert snapshot(db) == before
        # Another phone is not affected.
        assert self.phone(make_browser, "10.0.0.2").submit(ASH, {"code": code}).status_code == 303

    def test_a_paused_phone_carrying_on_does_not_lock_the_class_out(
        self, make_browser: Callable[[], Browser], make_code: Callable[..., str]
    ) -> None:
        """One phone hammering away after being paused does not use up the whole group's allowance."""
        phone = self.phone(make_browser, "10.0.0.1")
        for _ in range(3):
            assert phone.submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZZ"}).status_code == 400
        for _ in range(20):
            assert phone.submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZZ"}).status_code == 429
        parent = self.phone(make_browser, "10.0.0.2")
        assert parent.submit(ASH, {"code": make_code()}).status_code == 303

    def test_right_codes_do_not_count(self, make_browser: Callable[[], Browser], make_code: Callable[..., str]) -> None:
        """A parent who gets codes right (say, for three children) is never paused for it."""
        phone = self.phone(make_browser, "10.0.0.1")
        assert phone.submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZZ"}).status_code == 400
        assert phone.submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZY"}).status_code == 400
        for _ in range(4):
            assert phone.submit(ASH, {"code": make_code()}).status_code == 303
        assert phone.submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZX"}).status_code == 400
        assert phone.submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZW"}).status_code == 429

    def test_many_phones_guessing_one_group_are_paused(
        self, make_browser: Callable[[], Browser], make_code: Callable[..., str], db: Session
    ) -> None:
        """Wrong codes from many addresses add up per group; another group is unaffected."""
        code = make_code()
        birch_code = make_code("year-4-birch")
        before = snapshot(db)
        for n in range(5):
            assert self.phone(make_browser, f"10.0.1.{n}").submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZZ"}).status_code == 400
        paused = self.phone(make_browser, "10.0.1.99").submit(ASH, {"code": code})
        assert paused.status_code == 429
        assert "Too many attempts" in text_of(paused)
        assert snapshot(db) == before
        other = self.phone(make_browser, "10.0.1.100")
        assert other.submit("/join/year-4-birch", {"code": birch_code}).status_code == 303


# --- Headers -----------------------------------------------------------------------------------


def _assert_private(response) -> None:
    assert response.headers["Referrer-Policy"] == "no-referrer"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_pages_holding_tokens_send_no_referrer_and_a_csp(invite_url: str, browser: Browser, db: Session) -> None:
    """The invite page (usable or not) and the confirm-email link never leak their token onwards."""
    _assert_private(browser.get(invite_url))
    _assert_private(browser.get("/invite/not-a-real-token"))
    _assert_private(browser.get(link_in(outbox(db, kind="verify-email")[-1])))
    _assert_private(browser.get("/join/verify/not-a-real-token"))
    _assert_private(browser.submit(invite_url))
    _assert_private(browser.get(invite_url))


@pytest.mark.parametrize("problem", ["last use taken by another carer", "code replaced by a new letter"])
def test_code_that_stops_working_during_the_details_step(
    problem: str,
    make_child: Callable[..., tuple[int, str]],
    make_browser: Callable[[], Browser],
    browser: Browser,
    db: Session,
) -> None:
    """The code worked at step 2 but not by the time the details are sent: back to the code page, nothing kept."""
    child_id, code = make_child(uses_allowed=1)
    assert browser.submit(ASH, {"code": code}).status_code == 303
    if problem == "last use taken by another carer":
        other = make_browser()
        other.submit(ASH, {"code": code})
        assert other.submit(f"{ASH}/details", {**DETAILS, "email": "first@example.com"}).status_code == 302
    else:
        with session_scope() as session:
            codes.issue_code(session, session.get(Child, child_id))
    before = snapshot(db)

    refused = browser.submit(f"{ASH}/details", DETAILS)

    assert refused.status_code == 303 and refused.headers["Location"].endswith(ASH)
    page = browser.get(ASH)
    assert CODE_REFUSED in text_of(page)
    assert snapshot(db) == before
    assert browser.get(f"{ASH}/details").status_code == 302  # the code has to be typed again


# --- Input that looks odd but is fine ----------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("  Zoë   O'Brien-Smith ", "Zoë O'Brien-Smith"), ("李小龙", "李小龙"), ("S" * 80, "S" * 80), ("Sam\x1f", "Sam")],
    ids=["accents, apostrophe, extra spaces", "non-Latin script", "exactly 80", "trailing separator"],
)
def test_real_names_are_kept_as_typed(typed: str, stored: str, journey: Any, browser: Browser, db: Session) -> None:
    """Accented, hyphenated and non-Latin names are accepted; only stray spaces are tidied."""
    journey.code()
    assert browser.submit(f"{ASH}/details", {**DETAILS, "name": typed}).status_code == 302
    db.commit()
    assert db.get(Person, _the_membership(db).person_id).name == stored


@pytest.mark.parametrize(
    "typed",
    ["07911 123456", "+44 7911 123456", "07911-123-456", "(07911) 123456", "00447911123456", ""],
)
def test_mobiles_are_stored_in_one_form(typed: str, journey: Any, browser: Browser, db: Session) -> None:
    """However the mobile is written it is stored as +447911123456 (or not at all when left empty)."""
    journey.code()
    assert browser.submit(f"{ASH}/details", {**DETAILS, "mobile": typed}).status_code == 302
    db.commit()
    assert db.get(Person, _the_membership(db).person_id).mobile == ("+447911123456" if typed else None)


def test_email_is_stored_in_lower_case(journey: Any, browser: Browser, db: Session) -> None:
    """'  Sam@Example.COM ' and 'sam@example.com' are the same parent."""
    journey.code()
    assert browser.submit(f"{ASH}/details", {**DETAILS, "email": "  Sam@Example.COM "}).status_code == 302
    db.commit()
    assert db.get(Person, _the_membership(db).person_id).email == "sam@example.com"
    assert outbox(db, to="sam@example.com", kind="verify-email")


def test_markup_typed_into_a_name_is_shown_as_text(journey: Any, browser: Browser, db: Session) -> None:
    """Typing HTML into the form never puts it into the page."""
    journey.code()
    page = browser.submit(f"{ASH}/details", {**DETAILS, "name": '<script>alert("x")</script>Sam', "email": "bad"})
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


# --- The chat link not set yet -----------------------------------------------------------------


def test_invite_for_a_group_without_a_chat_link_is_kept(invite_url: str, browser: Browser, db: Session) -> None:
    """The class rep has not set the chat link yet: 'not ready', the link still works later."""
    with session_scope() as session:
        session.exec(update(Group).values(chat_url=""))
    before = snapshot(db)
    not_ready = browser.submit(invite_url)
    assert not_ready.status_code == 503
    assert "The group is not ready yet" in text_of(not_ready)
    assert "Your link has not been used" in text_of(not_ready)
    assert snapshot(db) == before
    with session_scope() as session:
        session.exec(update(Group).values(chat_url=ASH_CHAT))
    assert browser.submit(invite_url).headers["Location"] == ASH_CHAT
