"""The other ways through the journey: no code, approval, personal invitations, starting twice, expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from itsdangerous.timed import TimestampSigner
from sqlalchemy import update
from sqlmodel import Session, select

from membership import schools
from membership.db import session_scope
from membership.models import (
    CarerInvitation,
    Child,
    EnrolmentCode,
    Invite,
    LedgerEntry,
    Membership,
    Person,
    Status,
    Verification,
    utcnow,
)

from .conftest import DETAILS, Browser, csrf_token, error_summary, link_in, outbox, snapshot, text_of

ASH = "/join/year-2-ash"
BIRCH = "/join/year-4-birch"
ASH_CHAT = "https://chat.whatsapp.com/AshChat"



def ledger_actions(db) -> list[str]:
    """The ledger's actions, oldest first."""
    db.commit()
    return [entry.action for entry in db.exec(select(LedgerEntry).order_by(LedgerEntry.id))]


def memberships(db) -> list[Membership]:
    """Every membership, oldest first."""
    db.commit()
    return list(db.exec(select(Membership).order_by(Membership.id)))


def person_of(db, membership: Membership) -> Person:
    """The person behind a membership."""
    return db.get(Person, membership.person_id)


def verify_link(db, email: str = DETAILS["email"]) -> str:
    """The newest confirm-your-email link sent to an address."""
    return link_in(outbox(db, to=email, kind="verify-email")[-1])


# --- Without a code ----------------------------------------------------------------------------


def test_no_code_path_waits_for_the_moderator(
    browser: Browser, db: Session, make_code: Callable[..., str], make_moderator: Callable[..., str]
) -> None:
    """Naming the child instead of a code: details, email, agree, then 'Waiting for the moderator'."""
    make_code()  # the class has codes; this parent just has not got theirs
    rep = make_moderator("rep@example.com", "year-2-ash")
    other_rep = make_moderator("birch-rep@example.com", "year-4-birch")

    named = browser.submit(f"{ASH}/no-code", {"child_name": "amelia  r"})
    assert named.status_code == 303 and named.headers["Location"].endswith(f"{ASH}/details")
    details_page = browser.get(f"{ASH}/details")
    assert "You are asking to join as the parent or carer of amelia r." in text_of(details_page)

    assert browser.submit(f"{ASH}/details", DETAILS).headers["Location"].endswith(f"{ASH}/check-email")
    assert browser.get(verify_link(db)).headers["Location"].endswith(f"{ASH}/agree")
    agreed = browser.submit(f"{ASH}/agree", {"agree_coc": "y", "acknowledge_notice": "y"})
    assert agreed.status_code == 303
    assert agreed.headers["Location"].endswith(f"{ASH}/waiting")

    waiting = browser.get(agreed.headers["Location"])
    assert waiting.status_code == 200
    assert "Waiting for the moderator" in text_of(waiting)
    assert "As you joined without a code" in text_of(waiting)
    assert "AshChat" not in waiting.get_data(as_text=True)
    # Coming back later shows the same page.
    assert browser.get(f"{ASH}/done").headers["Location"].endswith(f"{ASH}/waiting")
    assert browser.get(f"{ASH}/agree").headers["Location"].endswith(f"{ASH}/waiting")

    (membership,) = memberships(db)
    assert membership.status == Status.PENDING_APPROVAL
    assert membership.verified_by == Verification.NONE
    assert membership.claimed_child_name == "amelia r."
    assert membership.child_id is None and membership.code_id is None and not membership.holds_code_use
    assert db.exec(select(Invite)).all() == []
    assert ledger_actions(db) == ["request", "email_verified", "agree", "acknowledge"]
    assert all(code.uses_taken == 0 for code in db.exec(select(EnrolmentCode)))

    (to_rep,) = outbox(db, to=rep, kind="moderator-pending")
    assert "Sam Parent" in to_rep.body_text and "amelia r." in to_rep.body_text
    assert "no code" in to_rep.body_text
    assert "/moderate/year-2-ash/" in to_rep.body_text
    assert outbox(db, to=other_rep) == []
    assert outbox(db, to=DETAILS["email"], kind="invite") == []


def test_approval_group_with_a_code_also_waits(
    journey: Any, browser: Browser, db: Session, make_moderator: Callable[..., str]
) -> None:
    """A group that wants its class rep to approve: a good code still waits, and the rep is told who."""
    rep = make_moderator("birch-rep@example.com", "year-4-birch")
    make_moderator("ash-rep@example.com", "year-2-ash")

    agreed = journey.through_agree("year-4-birch")

    assert agreed.status_code == 303 and agreed.headers["Location"].endswith(f"{BIRCH}/waiting")
    waiting = browser.get(agreed.headers["Location"])
    assert "Waiting for the moderator" in text_of(waiting)
    assert "As you joined without a code" not in text_of(waiting)
    assert "BirchChat" not in waiting.get_data(as_text=True)
    (membership,) = memberships(db)
    assert membership.status == Status.PENDING_APPROVAL
    assert membership.verified_by == Verification.CODE and membership.child_id is not None
    assert db.exec(select(Invite)).all() == []
    assert ledger_actions(db) == ["request", "email_verified", "agree", "acknowledge"]
    (to_rep,) = outbox(db, to=rep, kind="moderator-pending")
    assert "as the parent of Amelia R." in to_rep.body_text
    assert outbox(db, kind="moderator-pending") == [to_rep]
    assert outbox(db, to=DETAILS["email"], kind="invite") == []


def test_waiting_without_any_moderator_still_waits(journey: Any, browser: Browser, db: Session) -> None:
    """No class rep appointed yet: the parent still waits, and no email goes anywhere odd."""
    agreed = journey.through_agree("year-4-birch")
    assert agreed.headers["Location"].endswith(f"{BIRCH}/waiting")
    assert outbox(db, kind="moderator-pending") == []
    assert memberships(db)[0].status == Status.PENDING_APPROVAL


# --- Personal invitations from the school ------------------------------------------------------


@pytest.fixture
def invitation(make_child, db) -> dict:
    """The school emailed carer@example.com a personal invitation for Amelia R. in Year 2 Ash."""
    child_id, code = make_child()
    with session_scope() as session:
        group = schools.group_by_slug(session, "year-2-ash")
        row = schools.invite_carer(session, group, session.get(Child, child_id), "carer@example.com")
        invitation_id = row.id
    (message,) = outbox(db, to="carer@example.com", kind="carer-invitation")
    return {"id": invitation_id, "child_id": child_id, "code": code, "url": Browser.path(link_in(message))}


def test_personal_invitation_path(
    invitation: dict, browser: Browser, make_browser: Callable[[], Browser], db: Session
) -> None:
    """The school's own link: confirmed email at once, straight to agree, then the link is spent."""
    url = invitation["url"]
    assert url.startswith(f"{ASH}/invitation/")
    before = snapshot(db)

    # A mail scanner, then the parent, open the link: neither uses it.
    assert make_browser().get(url).status_code == 302
    opened = browser.get(url)
    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"{ASH}/details")
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    assert "Content-Security-Policy" in opened.headers
    assert snapshot(db) == before

    page = browser.get(f"{ASH}/details")
    html = page.get_data(as_text=True)
    assert 'value="carer@example.com"' in html
    assert "readonly" in html.split('id="email"')[1].split(">")[0]
    assert "It is already confirmed" in text_of(page)

    # A mistake elsewhere on the form: the invited address is still shown, nothing is used up.
    refused = browser.submit(f"{ASH}/details", {**DETAILS, "name": "", "email": ""})
    assert refused.status_code == 400
    assert error_summary(refused) == [("#name", "Enter your name")]
    assert 'value="carer@example.com"' in refused.get_data(as_text=True)
    assert snapshot(db) == before

    # A different address typed into (or forced past) the read-only box is ignored.
    details = browser.submit(f"{ASH}/details", {**DETAILS, "email": "someone-else@example.com"})
    assert details.status_code == 302
    assert details.headers["Location"].endswith(f"{ASH}/agree")

    (membership,) = memberships(db)
    assert person_of(db, membership).email == "carer@example.com"
    assert db.exec(select(Person).where(Person.email == "someone-else@example.com")).first() is None
    assert membership.status == Status.EMAIL_VERIFIED and membership.email_verified_at is not None
    assert membership.verified_by == Verification.INVITATION
    assert membership.child_id == invitation["child_id"]
    assert db.get(CarerInvitation, invitation["id"]).used_at is not None
    assert outbox(db, kind="verify-email") == []
    assert outbox(db, to="someone-else@example.com") == []
    assert ledger_actions(db) == ["request", "email_verified"]
    # The child's printed code is untouched: the invitation was the proof.
    assert db.exec(select(EnrolmentCode)).one().uses_taken == 0

    agreed = browser.submit(f"{ASH}/agree", {"agree_coc": "y", "acknowledge_notice": "y"})
    assert "/invite/" in agreed.headers["Location"]
    assert browser.submit(agreed.headers["Location"]).headers["Location"] == ASH_CHAT

    for reader in (browser, make_browser()):
        spent = reader.get(url)
        assert spent.status_code == 410
        assert "This invitation has already been used" in text_of(spent)
        assert "AshChat" not in spent.get_data(as_text=True)


def _tampered(url: str) -> str:
    head, token = url.rsplit("/", 1)
    at = len(token) // 3
    return f"{head}/{token[:at]}{'B' if token[at] != 'B' else 'C'}{token[at + 1 :]}"


def _revoke(invitation: dict) -> str:
    with session_scope() as session:
        session.exec(update(CarerInvitation).values(revoked_at=utcnow()))
    return invitation["url"]


def _expire_row(invitation: dict) -> str:
    with session_scope() as session:
        session.exec(update(CarerInvitation).values(expires_at=utcnow() - timedelta(minutes=1)))
    return invitation["url"]


INVITATION_PROBLEMS = {
    "one character changed": (lambda inv: _tampered(inv["url"]), 404, "This invitation link is not valid"),
    "cut short": (lambda inv: inv["url"][:-5], 404, "This invitation link is not valid"),
    "garbage": (lambda inv: f"{ASH}/invitation/nonsense", 404, "This invitation link is not valid"),
    "opened at another class's page": (
        lambda inv: inv["url"].replace(ASH, BIRCH),
        404,
        "This invitation link is not valid",
    ),
    "revoked by the school": (_revoke, 410, "This invitation has been cancelled"),
    "expired": (_expire_row, 410, "This invitation has expired"),
}


@pytest.mark.parametrize("case", INVITATION_PROBLEMS)
def test_unusable_personal_invitation_gets_a_clear_page(
    case: str, invitation: dict, browser: Browser, db: Session
) -> None:
    """A broken, foreign, cancelled or old invitation: a page saying so, and no way on to the details step."""
    make_url, status, heading = INVITATION_PROBLEMS[case]
    url = make_url(invitation)
    before = snapshot(db)
    page = browser.get(url)
    assert page.status_code == status
    assert heading in text_of(page)
    assert "with the code from the school letter" in text_of(page)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert browser.get(f"{ASH}/details").status_code == 302
    assert snapshot(db) == before


def test_invitation_expired_by_age(
    invitation: dict, browser: Browser, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight days later the invitation says it has expired."""
    later = TimestampSigner.get_timestamp(TimestampSigner("x")) + 8 * 24 * 3600
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    page = browser.get(invitation["url"])
    assert page.status_code == 410
    assert "This invitation has expired" in text_of(page)


@pytest.mark.parametrize("problem", ["revoked", "expired"])
def test_invitation_spent_between_opening_and_details(
    problem: str, invitation: dict, browser: Browser, db: Session
) -> None:
    """Cancelled or run out while the form was open: the details are refused, saying why, and nothing kept."""
    assert browser.get(invitation["url"]).status_code == 302
    (_revoke if problem == "revoked" else _expire_row)(invitation)
    before = snapshot(db)

    refused = browser.submit(f"{ASH}/details", DETAILS)

    assert refused.status_code == 410
    assert {"revoked": "has been cancelled", "expired": "has expired"}[problem] in text_of(refused)
    assert snapshot(db) == before
    assert browser.get(f"{ASH}/details").status_code == 302  # the journey was forgotten


def test_invitation_opened_on_two_phones(
    invitation: dict, browser: Browser, make_browser: Callable[[], Browser], db: Session
) -> None:
    """The carer opened the link on two phones and finished on one: the other is sent to their email."""
    other = make_browser()
    for phone in (browser, other):
        assert phone.get(invitation["url"]).status_code == 302
    assert other.submit(f"{ASH}/details", DETAILS).headers["Location"].endswith(f"{ASH}/agree")
    before = snapshot(db)

    second = browser.submit(f"{ASH}/details", {**DETAILS, "name": "Second Phone"})

    assert second.status_code == 302 and second.headers["Location"].endswith(f"{ASH}/check-email")
    after = snapshot(db)
    assert after["memberships"] == before["memberships"] == 1
    assert after["invitation_states"] == before["invitation_states"]
    (cont,) = outbox(db, to="carer@example.com", kind="continue")
    assert make_browser().get(link_in(cont)).headers["Location"].endswith(f"{ASH}/agree")


# --- Starting twice with the same email --------------------------------------------------------


def test_same_email_twice_in_a_group_starts_nothing_new_and_says_nothing(
    make_code: Callable[..., str], make_browser: Callable[[], Browser], db: Session
) -> None:
    """A repeat start with a known email: the same 'Check your email' page, a 'continue' email, nothing new."""
    first, second = make_browser(), make_browser()
    first.submit(ASH, {"code": make_code()})
    first_details = first.submit(f"{ASH}/details", DETAILS)
    first_page = first.get(f"{ASH}/check-email")
    code = make_code("year-2-ash", "Ben T.")
    second.submit(ASH, {"code": code})
    before = snapshot(db)

    second_details = second.submit(f"{ASH}/details", {**DETAILS, "email": "Sam@Example.COM", "name": "Not Sam"})
    second_page = second.get(f"{ASH}/check-email")

    assert second_details.status_code == first_details.status_code
    assert second_details.headers["Location"] == first_details.headers["Location"]
    assert second_page.status_code == first_page.status_code == 200
    assert text_of(second_page) == text_of(first_page)
    assert "Send the email again" in text_of(second_page)

    after = snapshot(db)
    assert after["memberships"] == before["memberships"] == 1
    assert after["people"] == 1 and after["ledger"] == before["ledger"]
    assert after["code_uses"] == before["code_uses"]
    (cont,) = outbox(db, to=DETAILS["email"], kind="continue")
    assert "You already have a request in progress" in cont.body_text
    assert "Not Sam" not in cont.body_text
    assert person_of(db, memberships(db)[0]).name == "Sam Parent"

    # The 'continue' link carries the real owner on from where they were.
    carried = make_browser().get(link_in(cont))
    assert carried.headers["Location"].endswith(f"{ASH}/agree")


def test_resend_on_check_email(
    journey: Any, browser: Browser, make_browser: Callable[[], Browser], make_code: Callable[..., str], db: Session
) -> None:
    """'Send the email again' sends another link; for a repeat start it sends the 'continue' email again."""
    journey.code()
    journey.details()
    resent = browser.submit(f"{ASH}/check-email")
    assert resent.status_code == 303
    assert "We have sent the email again." in text_of(browser.get(f"{ASH}/check-email"))
    assert len(outbox(db, to=DETAILS["email"], kind="verify-email")) == 2

    again = make_browser()
    again.submit(ASH, {"code": make_code("year-2-ash", "Ben T.")})
    again.submit(f"{ASH}/details", DETAILS)
    before = snapshot(db)
    assert again.submit(f"{ASH}/check-email").status_code == 303
    assert "We have sent the email again." in text_of(again.get(f"{ASH}/check-email"))
    assert len(outbox(db, to=DETAILS["email"], kind="continue")) == 2
    assert snapshot(db)["memberships"] == before["memberships"]


@pytest.mark.parametrize("status", ["waiting", "joined"])
def test_same_email_after_joining_gets_the_same_page(
    status: str, journey: Any, make_browser: Callable[[], Browser], make_code: Callable[..., str], db: Session
) -> None:
    """Someone typing a member's email: the ordinary 'Check your email' page, and the member is emailed."""
    slug = "year-4-birch" if status == "waiting" else "year-2-ash"
    agreed = journey.through_agree(slug)
    if status == "joined":
        journey.browser.submit(agreed.headers["Location"])
    code = make_code(slug, "Ben T.")
    before = snapshot(db)

    stranger = make_browser()
    stranger.submit(f"/join/{slug}", {"code": code})
    response = stranger.submit(f"/join/{slug}/details", DETAILS)

    assert response.status_code == 302 and response.headers["Location"].endswith(f"/join/{slug}/check-email")
    page = stranger.get(response.headers["Location"])
    assert "We have sent a link to sam@example.com" in text_of(page)
    assert "Send the email again" in text_of(page)
    after = snapshot(db)
    assert after["memberships"] == before["memberships"] and after["code_uses"] == before["code_uses"]
    (cont,) = outbox(db, to=DETAILS["email"], kind="continue")
    expected = "You have already joined" if status == "joined" else "You already have a request in progress"
    assert expected in cont.body_text


def test_same_email_in_another_group_is_a_new_membership(journey: Any, browser: Browser, db: Session) -> None:
    """One parent with children in two classes joins both."""
    journey.code()
    journey.details()
    journey.code("year-4-birch")
    journey.details("year-4-birch")
    assert len(memberships(db)) == 2
    assert len(outbox(db, to=DETAILS["email"], kind="verify-email")) == 2
    assert outbox(db, kind="continue") == []


# --- Email confirmation and the 24-hour hold on a code use -------------------------------------


def _age_memberships(hours: int) -> None:
    with session_scope() as session:
        session.exec(update(Membership).values(created_at=utcnow() - timedelta(hours=hours)))


def test_unconfirmed_start_gives_its_code_use_back_after_24_hours(
    make_code: Callable[..., str], make_browser: Callable[[], Browser], db: Session
) -> None:
    """A one-carer code held by a start never confirmed: after 24 h another carer can use it; the old link expires."""
    code = make_code(uses_allowed=1)
    slow, other = make_browser(), make_browser()
    slow.submit(ASH, {"code": code})
    slow.submit(f"{ASH}/details", {**DETAILS, "email": "slow@example.com"})
    old_link = verify_link(db, "slow@example.com")

    # Within the 24 hours the use is held.
    _age_memberships(23)
    assert other.submit(ASH, {"code": code}).status_code == 400

    _age_memberships(25)
    unchanged = snapshot(db)
    assert other.submit(ASH, {"code": code}).status_code == 303
    assert snapshot(db) == unchanged  # checking a code only reads: the use is given back with the details
    assert other.submit(f"{ASH}/details", {**DETAILS, "email": "quick@example.com"}).status_code == 302

    slow_membership, quick_membership = memberships(db)
    assert slow_membership.status == Status.EXPIRED and not slow_membership.holds_code_use
    assert quick_membership.status == Status.DETAILS_GIVEN and quick_membership.holds_code_use
    assert db.exec(select(EnrolmentCode)).one().uses_taken == 1
    before = snapshot(db)

    late = slow.get(old_link)
    assert late.status_code == 410
    assert "This link has expired" in text_of(late)
    assert snapshot(db) == before
    assert "email_verified" not in ledger_actions(db)


def test_confirming_after_24_hours_expires_the_start_and_frees_the_code(
    make_code: Callable[..., str], browser: Browser, db: Session
) -> None:
    """A link opened after the 24 hours (re-sent, so still signed recently) does not keep the use."""
    code = make_code(uses_allowed=1)
    browser.submit(ASH, {"code": code})
    browser.submit(f"{ASH}/details", DETAILS)
    _age_memberships(25)

    late = browser.get(verify_link(db))

    assert late.status_code == 410
    assert "This link has expired" in text_of(late)
    (membership,) = memberships(db)
    assert membership.status == Status.EXPIRED
    assert db.exec(select(EnrolmentCode)).one().uses_taken == 0
    assert "email_verified" not in ledger_actions(db)


def test_confirm_link_opened_twice_is_harmless(
    journey: Any, browser: Browser, make_browser: Callable[[], Browser], db: Session
) -> None:
    """Opening the email link again (or on another phone) carries on without recording anything twice."""
    journey.code()
    journey.details()
    link = verify_link(db)
    assert browser.get(link).headers["Location"].endswith(f"{ASH}/agree")
    before = snapshot(db)
    assert make_browser().get(link).headers["Location"].endswith(f"{ASH}/agree")
    assert browser.get(link).headers["Location"].endswith(f"{ASH}/agree")
    assert snapshot(db) == before
    assert ledger_actions(db).count("email_verified") == 1


@pytest.mark.parametrize("mangle", ["one character changed", "cut short", "garbage"])
def test_broken_confirm_link_says_so(mangle: str, journey: Any, browser: Browser, db: Session) -> None:
    """A confirm link damaged by a mail client: 'This link is not valid', nothing confirmed."""
    journey.code()
    journey.details()
    link = Browser.path(verify_link(db))
    bad = {"one character changed": _tampered(link), "cut short": link[:-4], "garbage": "/join/verify/nonsense"}[mangle]
    before = snapshot(db)
    page = browser.get(bad)
    assert page.status_code == 404
    assert "This link is not valid" in text_of(page)
    assert snapshot(db) == before


def test_confirm_link_after_its_lifetime_says_expired(
    journey: Any, browser: Browser, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A confirm link opened two days later: 'This link has expired'."""
    journey.code()
    journey.details()
    later = TimestampSigner.get_timestamp(TimestampSigner("x")) + 25 * 3600
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    before = snapshot(db)
    page = browser.get(verify_link(db))
    assert page.status_code == 410
    assert "This link has expired" in text_of(page)
    assert snapshot(db) == before


# --- The chat link stays secret until the invite is redeemed -----------------------------------


def test_chat_link_appears_nowhere_before_redemption(
    journey: Any, browser: Browser, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page, header and email on the way shows no chat link; only the final 303 carries it."""
    seen = []
    real_open = browser.client.open

    def recording_open(*args, **kwargs):
        response = real_open(*args, **kwargs)
        seen.append(response)
        return response

    monkeypatch.setattr(browser.client, "open", recording_open)
    browser.get(ASH)
    browser.get(f"{ASH}/no-code")
    agreed = journey.through_agree()
    invite_url = agreed.headers["Location"]
    browser.get(invite_url)
    browser.get(f"{ASH}/done")
    before_redeem = list(seen)

    opened = browser.submit(invite_url)

    assert len(before_redeem) >= 10
    for response in before_redeem:
        assert "AshChat" not in response.get_data(as_text=True)
        assert all("AshChat" not in value for _, value in response.headers.items())
    assert all("AshChat" not in message.body_text for message in outbox(db))
    assert opened.headers["Location"] == ASH_CHAT
    assert "AshChat" not in browser.get(f"{ASH}/done").get_data(as_text=True)
    assert "You have used your link" in text_of(browser.get(f"{ASH}/done"))


def test_invite_and_invitation_pages_send_no_referrer_and_a_csp(
    journey: Any, browser: Browser, db: Session, invitation: dict
) -> None:
    """Pages whose address holds a secret tell the browser not to pass it on, and allow no scripts."""
    invite_url = journey.through_agree().headers["Location"]
    pages = [browser.get(invite_url), browser.get(invitation["url"]), browser.get(_tampered(invitation["url"]))]
    for response in pages:
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "script-src 'none'" in response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
    assert '<meta name="referrer" content="no-referrer">' in browser.get(invite_url).get_data(as_text=True)


# --- Resend limits -----------------------------------------------------------------------------


class TestResendLimit:
    """'Send the email again' cannot be used to flood someone's mailbox."""

    @pytest.fixture
    def config(self, config: dict) -> dict:
        """A small mail limit so the test reaches it."""
        return {**config, "MAIL_LIMIT_PER_CLIENT": "2 per minute"}

    def test_third_resend_in_a_minute_is_paused(self, journey: Any, browser: Browser, db: Session) -> None:
        """Two resends go out; the third gets 'Too many attempts' and sends nothing."""
        journey.code()
        journey.details()
        assert browser.submit(f"{ASH}/check-email").status_code == 303
        assert browser.submit(f"{ASH}/check-email").status_code == 303
        sent = snapshot(db)["outbox"]
        token = csrf_token(browser, f"{ASH}/check-email")
        paused = browser.client.post(f"{ASH}/check-email", data={"csrf_token": token})
        assert paused.status_code == 429
        assert "Too many attempts" in text_of(paused)
        assert snapshot(db)["outbox"] == sent


# --- Double taps -------------------------------------------------------------------------------


def test_double_tap_on_details_starts_once(journey: Any, browser: Browser, db: Session) -> None:
    """Pressing Continue twice on a slow connection: one membership, one code use, one person."""
    journey.code()
    token = csrf_token(browser, f"{ASH}/details")
    data = {**DETAILS, "csrf_token": token}
    cookie = browser.client.get_cookie("session").value  # both taps carry the same cookie
    first = browser.client.post(f"{ASH}/details", data=data)
    browser.client.set_cookie("session", cookie)
    second = browser.client.post(f"{ASH}/details", data=data)
    assert first.headers["Location"] == second.headers["Location"]
    assert second.headers["Location"].endswith(f"{ASH}/check-email")
    after = snapshot(db)
    assert after["memberships"] == after["people"] == 1
    assert [uses for _, uses, _ in after["code_uses"]] == [1]
    assert ledger_actions(db) == ["request"]


def test_double_tap_on_agree_records_once(journey: Any, browser: Browser, db: Session) -> None:
    """Pressing 'Agree and continue' twice: one pair of agreements, one invite."""
    journey.code()
    journey.details()
    journey.verify()
    form = Browser.hidden_fields(browser.get(f"{ASH}/agree").get_data(as_text=True))
    data = {**form, "agree_coc": "y", "acknowledge_notice": "y"}
    first = browser.client.post(f"{ASH}/agree", data=data)
    second = browser.client.post(f"{ASH}/agree", data=data)
    assert first.status_code == 303 and "/invite/" in first.headers["Location"]
    assert second.status_code == 302 and second.headers["Location"].endswith(f"{ASH}/done")
    assert "Your link is in your email" in text_of(browser.get(f"{ASH}/done"))
    assert ledger_actions(db) == ["request", "email_verified", "agree", "acknowledge", "approve", "invite_issue"]
    assert snapshot(db)["invites"] == 1


def test_starting_again_after_a_mistyped_email_gives_the_code_use_back(browser, db, make_code, make_browser):
    """A parent who mistypes their email and starts again does not lock the other carer out."""
    code = make_code(uses_allowed=2)
    browser.submit("/join/year-2-ash", {"code": code})
    browser.submit("/join/year-2-ash/details", {**DETAILS, "email": "sam@exmaple.com"})
    browser.submit("/join/year-2-ash", {"code": code})
    browser.submit("/join/year-2-ash/details", DETAILS)
    db.commit()
    assert db.exec(select(EnrolmentCode)).one().uses_taken == 1
    statuses = sorted(m.status for m in db.exec(select(Membership)))
    assert statuses == [Status.DETAILS_GIVEN, Status.LEFT]
    assert db.exec(select(LedgerEntry).where(LedgerEntry.action == "withdraw")).one()

    other_carer = make_browser()
    other_carer.submit("/join/year-2-ash", {"code": code})
    response = other_carer.submit("/join/year-2-ash/details", {**DETAILS, "email": "alex@example.com"})
    assert "/check-email" in response.headers["Location"]
    db.commit()
    assert db.exec(select(EnrolmentCode)).one().uses_taken == 2
