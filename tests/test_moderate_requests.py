"""A moderator's pending requests: approve, decline with a reason, vouch for a parent with no code."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, select

from membership import ledger, moderation
from membership.db import new_session
from membership.models import (
    EnrolmentCode,
    Invite,
    LedgerEntry,
    Membership,
    Person,
    School,
    Status,
    User,
    Verification,
)
from membership.moderation import requests as decisions
from membership.validation import Invalid

from .conftest import DETAILS, PASSWORD, Browser, error_summary, link_in, outbox, sign_in, snapshot, text_of

ASH, BIRCH = "year-2-ash", "year-4-birch"
BIRCH_CHAT = "https://chat.whatsapp.com/BirchChat"
BIRCH_REP = "rep4@elm.example"


# --- Fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def birch_rep_id(make_account) -> int:
    """The id of a moderator of Year 4 Birch (the group that approves every request)."""
    return make_account(BIRCH_REP, groups=(BIRCH,))


@pytest.fixture
def birch_rep(birch_rep_id, make_browser) -> Browser:
    """A signed-in moderator of Year 4 Birch."""
    phone = make_browser()
    assert sign_in(phone, BIRCH_REP).status_code == 303
    return phone


@pytest.fixture
def ash_rep_id(moderator, db) -> int:
    """The id of the `moderator` fixture's account (Year 2 Ash)."""
    db.commit()
    return db.exec(select(User.id).where(User.email == "rep@elm.example")).one()


def membership_of(db: Session, email: str = DETAILS["email"]) -> Membership:
    """The newest membership of a parent, fresh from the database."""
    db.commit()
    return db.exec(
        select(Membership).join(Person, Person.id == Membership.person_id)
        .where(Person.email == email).order_by(Membership.id.desc())
    ).first()


def ask_with_code(journey: Any, db: Session) -> Membership:
    """A parent with the school letter's code asks to join Year 4 Birch and waits for approval."""
    assert journey.through_agree(BIRCH).headers["Location"].endswith(f"/join/{BIRCH}/waiting")
    return membership_of(db)


def ask_without_code(phone: Browser, db: Session, slug: str = ASH, **details: str) -> Membership:
    """A parent with no code names their child, confirms their email and agrees; they wait for a moderator."""
    details = {**DETAILS, **details}
    phone.submit(f"/join/{slug}/no-code", {"child_name": "Amelia R."})
    phone.submit(f"/join/{slug}/details", details)
    phone.get(link_in(outbox(db, to=details["email"], kind="verify-email")[-1]))
    agreed = phone.submit(f"/join/{slug}/agree", {"agree_coc": "y", "acknowledge_notice": "y"})
    assert agreed.headers["Location"].endswith(f"/join/{slug}/waiting")
    return membership_of(db, details["email"])


def press(phone: Browser, slug: str, action: str, membership_id: int):
    """Press a request's button on the group page: the form must be there, posted with the page's token."""
    page = phone.get(f"/moderate/{slug}/").get_data(as_text=True)
    url = f"/moderate/{slug}/requests/{membership_id}/{action}"
    assert f'action="{url}"' in page, f"no {action} button for request {membership_id} on the group page"
    return phone.client.post(url, data={"csrf_token": Browser.hidden_fields(page)["csrf_token"]})


def entries(db: Session, membership_id: int) -> list[LedgerEntry]:
    """A membership's ledger entries, oldest first."""
    db.commit()
    query = select(LedgerEntry).where(LedgerEntry.membership_id == membership_id).order_by(LedgerEntry.seq)
    return list(db.exec(query))


def decision_state(db: Session, membership_id: int) -> dict:
    """Everything about a request a refused decision must leave alone."""
    membership = membership_of_id(db, membership_id)
    return {
        **snapshot(db),
        "membership": (membership.status, membership.verified_by, membership.vouched_by_user_id,
                       membership.end_reason, membership.end_note, membership.ended_at, membership.approved_at),
    }


def membership_of_id(db: Session, membership_id: int) -> Membership:
    """A membership by id, fresh from the database."""
    db.commit()
    return db.get(Membership, membership_id, populate_existing=True)


def redeem_emailed_invite(phone: Browser, db: Session, email: str = DETAILS["email"]):
    """The parent opens the invite email's link, sees the confirm page, and presses Open the group."""
    (message,) = outbox(db, to=email, kind="invite")
    assert "the group's moderator has approved your request" in message.body_text
    link = link_in(message)
    assert "Open the group" in text_of(phone.get(link))
    return phone.submit(link)


def ledger_intact(db: Session) -> bool:
    """True when the school's hash chain still verifies."""
    db.commit()
    return ledger.verify(db, db.exec(select(School.id)).one()).ok


# --- Domain: approve ----------------------------------------------------------------------------


def test_approving_a_coded_request_emails_a_link_that_opens_the_group(journey, browser, db, birch_rep_id):
    """Approve: the parent gets an invite email whose link opens the chat, and the ledger names the moderator."""
    waiting = ask_with_code(journey, db)
    rep = db.get(User, birch_rep_id)

    decisions.approve(db, waiting, rep)
    db.commit()

    membership = membership_of_id(db, waiting.id)
    assert membership.status == Status.INVITED and membership.approved_at is not None
    person = db.get(Person, membership.person_id)
    approve_entry, issue_entry = entries(db, membership.id)[-2:]
    moderator = f"user:{rep.id}"
    assert (approve_entry.action, approve_entry.actor, approve_entry.channel) == ("approve", moderator, "moderator")
    assert approve_entry.person_ref == person.ref and json.loads(approve_entry.detail)["verified_by"] == "code"
    assert (issue_entry.action, issue_entry.actor, issue_entry.person_ref) == ("invite_issue", moderator, person.ref)

    opened = redeem_emailed_invite(browser, db)
    assert opened.status_code == 303 and opened.headers["Location"] == BIRCH_CHAT
    assert membership_of_id(db, waiting.id).status == Status.LINK_USED
    assert ledger_intact(db)


def test_approving_without_a_code_is_refused_until_the_moderator_vouches(browser, db, ash_rep_id):
    """A request with no code cannot simply be approved: nothing shows the child, so the moderator must vouch."""
    waiting = ask_without_code(browser, db)
    before = decision_state(db, waiting.id)

    with pytest.raises(decisions.MustVouch):
        decisions.approve(db, waiting, db.get(User, ash_rep_id))
    db.rollback()

    assert decision_state(db, waiting.id) == before
    assert outbox(db, to=DETAILS["email"], kind="invite") == []


@pytest.mark.parametrize("second", ["approve", "vouch", "reject"])
def test_a_decided_request_cannot_be_decided_again(journey, db, birch_rep_id, second):
    """Once approved, a second approve, vouch or decline is refused and changes nothing (no second invite)."""
    waiting = ask_with_code(journey, db)
    rep = db.get(User, birch_rep_id)
    decisions.approve(db, waiting, rep)
    db.commit()
    before = decision_state(db, waiting.id)

    again = {
        "approve": lambda m: decisions.approve(db, m, rep),
        "vouch": lambda m: decisions.vouch(db, m, rep),
        "reject": lambda m: decisions.reject(db, m, rep, "Changed my mind"),
    }[second]
    with pytest.raises(decisions.NotPending) as refused:
        again(membership_of_id(db, waiting.id))
    db.rollback()

    assert refused.value.status == Status.INVITED
    assert decision_state(db, waiting.id) == before
    assert len(outbox(db, to=DETAILS["email"], kind="invite")) == 1


@pytest.mark.parametrize("decide", [decisions.approve, decisions.vouch])
def test_a_request_still_confirming_its_email_cannot_be_decided(browser, db, ash_rep_id, decide):
    """A parent who has not confirmed their email or agreed yet is not waiting for a moderator: nothing changes."""
    browser.submit(f"/join/{ASH}/no-code", {"child_name": "Amelia R."})
    browser.submit(f"/join/{ASH}/details", DETAILS)
    early = membership_of(db)
    before = decision_state(db, early.id)

    with pytest.raises(decisions.NotPending):
        decide(db, early, db.get(User, ash_rep_id))
    db.rollback()

    assert decision_state(db, early.id) == before


def test_a_moderator_of_another_group_cannot_decide(journey, db, ash_rep_id):
    """Year 2 Ash's moderator cannot approve a Year 4 Birch request, even bypassing the pages."""
    waiting = ask_with_code(journey, db)
    before = decision_state(db, waiting.id)

    with pytest.raises(moderation.NotFound):
        decisions.approve(db, waiting, db.get(User, ash_rep_id))
    db.rollback()

    assert decision_state(db, waiting.id) == before


def test_two_approvals_at_once_issue_one_invite(app, journey, db, birch_rep_id):
    """A double tap (two requests racing) approves once: one invite, one email, the other refused."""
    waiting_id = ask_with_code(journey, db).id
    barrier = threading.Barrier(2)
    results: list[str] = []

    def tap() -> None:
        with app.app_context():
            barrier.wait(timeout=10)  # before opening a session: SQLite's writer lock would hold the other back
            session = new_session(write=True)
            try:
                decisions.approve(session, session.get(Membership, waiting_id), session.get(User, birch_rep_id))
                session.commit()
                results.append("approved")
            except decisions.NotPending:
                session.rollback()
                results.append("refused")
            finally:
                session.close()

    threads = [threading.Thread(target=tap) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results) == ["approved", "refused"]
    db.commit()
    assert len(db.exec(select(Invite)).all()) == 1
    assert len(outbox(db, to=DETAILS["email"], kind="invite")) == 1
    assert [e.action for e in entries(db, waiting_id)].count("approve") == 1
    assert ledger_intact(db)


# --- Domain: decline ----------------------------------------------------------------------------


@pytest.mark.parametrize("tell_parent", [True, False])
def test_declining_records_the_reason_and_tells_the_parent_politely(journey, db, birch_rep_id, tell_parent):
    """Decline: the request ends with its reason kept; the parent is emailed kindly, with the reason only if chosen."""
    waiting = ask_with_code(journey, db)
    rep = db.get(User, birch_rep_id)
    reason = "We could not match your name to the class list."

    decisions.reject(db, waiting, rep, f"  {reason}  ", tell_parent=tell_parent)
    db.commit()

    membership = membership_of_id(db, waiting.id)
    assert membership.status == Status.REJECTED and membership.ended_at is not None
    assert (membership.end_reason, membership.end_note) == ("rejected", reason)
    entry = entries(db, waiting.id)[-1]
    assert (entry.action, entry.actor, entry.channel) == ("reject", f"user:{rep.id}", "moderator")
    assert entry.person_ref == db.get(Person, membership.person_id).ref
    detail = json.loads(entry.detail)
    assert "reason" not in detail  # free text stays erasable, out of the permanent ledger
    assert detail["reason_sha256"] == hashlib.sha256(reason.encode()).hexdigest()

    (message,) = outbox(db, to=DETAILS["email"], kind="request-declined")
    assert message.subject == "Your request to join Year 4 Birch"
    assert "has not been able to approve your request" in message.body_text
    assert "contact the Elm Primary School school office" in message.body_text
    assert "not a judgement about you" in message.body_text
    assert (reason in message.body_text) is tell_parent
    assert "BirchChat" not in message.body_text and "/invite/" not in message.body_text
    assert outbox(db, to=DETAILS["email"], kind="invite") == []
    assert db.exec(select(Invite)).all() == []
    assert ledger_intact(db)


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("", "Enter a reason for declining the request"),
        ("   \n ", "Enter a reason for declining the request"),
        ("x" * 501, "The reason must be 500 characters or fewer"),
        ("Not known\x00to us", "The reason must only include letters, numbers and punctuation"),
    ],
)
def test_declining_needs_a_reason(journey, db, birch_rep_id, reason, message):
    """No reason, or one too long or with control characters: refused, and the request still waits."""
    waiting = ask_with_code(journey, db)
    before = decision_state(db, waiting.id)

    with pytest.raises(Invalid, match=message):
        decisions.reject(db, waiting, db.get(User, birch_rep_id), reason)
    db.rollback()

    assert decision_state(db, waiting.id) == before


def test_a_500_character_reason_is_accepted(journey, db, birch_rep_id):
    """The longest reason allowed is kept whole."""
    waiting = ask_with_code(journey, db)
    decisions.reject(db, waiting, db.get(User, birch_rep_id), "y" * 500)
    db.commit()
    assert membership_of_id(db, waiting.id).end_note == "y" * 500


def test_declining_gives_the_code_use_back(journey, db, birch_rep_id):
    """A declined request does not keep one of the child's carer places: the real carer can still use the code."""
    waiting = ask_with_code(journey, db)
    uses_before = db.get(EnrolmentCode, waiting.code_id).uses_taken
    assert uses_before == 1

    decisions.reject(db, membership_of_id(db, waiting.id), db.get(User, birch_rep_id), "Not in this class")
    db.commit()

    assert db.get(EnrolmentCode, waiting.code_id, populate_existing=True).uses_taken == uses_before - 1
    assert membership_of_id(db, waiting.id).holds_code_use is False


# --- Domain: vouch ------------------------------------------------------------------------------


def test_vouching_records_who_vouched_and_approves(browser, db, ash_rep_id):
    """Vouch: the request becomes moderator-verified in this moderator's name, then approved with a working link."""
    waiting = ask_without_code(browser, db)

    decisions.vouch(db, waiting, db.get(User, ash_rep_id))
    db.commit()

    membership = membership_of_id(db, waiting.id)
    assert membership.verified_by == Verification.MODERATOR and membership.vouched_by_user_id == ash_rep_id
    assert membership.status == Status.INVITED
    person_ref = db.get(Person, membership.person_id).ref
    vouch_entry, approve_entry, issue_entry = entries(db, waiting.id)[-3:]
    assert (vouch_entry.action, vouch_entry.actor) == ("vouch", f"user:{ash_rep_id}")
    assert vouch_entry.person_ref == person_ref
    assert json.loads(vouch_entry.detail) == {"verified_by": "moderator", "was": "none"}
    assert approve_entry.action == "approve" and json.loads(approve_entry.detail)["verified_by"] == "moderator"
    assert issue_entry.action == "invite_issue"

    opened = redeem_emailed_invite(browser, db)
    assert opened.status_code == 303 and opened.headers["Location"] == "https://chat.whatsapp.com/AshChat"
    assert ledger_intact(db)


def test_a_request_with_a_code_cannot_be_vouched_for(journey, db, birch_rep_id):
    """Vouching is only for parents who gave no code; a coded request is refused and left as it was."""
    waiting = ask_with_code(journey, db)
    before = decision_state(db, waiting.id)

    with pytest.raises(decisions.CannotVouch):
        decisions.vouch(db, waiting, db.get(User, birch_rep_id))
    db.rollback()

    assert decision_state(db, waiting.id) == before


# --- Pages: the queue and approving -------------------------------------------------------------


def test_moderator_approves_from_the_emailed_link_and_the_parent_gets_in(journey, browser, db, birch_rep):
    """The 'parent waiting' email leads to the request; Approve emails the parent a link that opens the chat."""
    waiting = ask_with_code(journey, db)
    (alert,) = outbox(db, to=BIRCH_REP, kind="moderator-pending")
    page = birch_rep.get(link_in(alert))
    assert page.status_code == 200
    body = text_of(page)
    for shown in ("Sam Parent", "Printed code", "Amelia R.", "Parent", "+44 7911 123456", "sam@example.com",
                  "Approve", "Decline"):
        assert shown in body, shown
    assert "Vouch and approve" not in body

    approved = press(birch_rep, BIRCH, "approve", waiting.id)
    assert approved.status_code == 303 and approved.headers["Location"].endswith(f"/moderate/{BIRCH}/")
    after = text_of(birch_rep.get(f"/moderate/{BIRCH}/"))
    assert "Sam Parent is approved. We have emailed them their link." in after
    assert "No requests are waiting." in after

    opened = redeem_emailed_invite(browser, db)
    assert opened.status_code == 303 and opened.headers["Location"] == BIRCH_CHAT


def test_approving_twice_says_it_was_already_approved(journey, db, birch_rep):
    """A second press of Approve (double tap, back button) gets a clear message and no second invite."""
    waiting = ask_with_code(journey, db)
    page = birch_rep.get(f"/moderate/{BIRCH}/").get_data(as_text=True)
    token = Browser.hidden_fields(page)["csrf_token"]
    url = f"/moderate/{BIRCH}/requests/{waiting.id}/approve"

    first = birch_rep.client.post(url, data={"csrf_token": token})
    second = birch_rep.client.post(url, data={"csrf_token": token})

    assert (first.status_code, second.status_code) == (303, 303)
    page = birch_rep.get(second.headers["Location"])
    assert "Sam Parent’s request has already been approved" in text_of(page)
    assert len(outbox(db, to=DETAILS["email"], kind="invite")) == 1
    assert len(db.exec(select(Invite)).all()) == 1


def test_the_queue_shows_how_each_request_was_verified(make_account, make_browser, browser, journey, db):
    """One moderator of both groups sees each request's proof, and a no-code request says to check first."""
    make_account("both@elm.example", groups=(ASH, BIRCH))
    rep = make_browser()
    sign_in(rep, "both@elm.example")
    ask_with_code(journey, db)
    ask_without_code(make_browser(), db, email="nocode@example.com", name="Jo Nocode", mobile="", relationship="carer")

    birch = text_of(rep.get(f"/moderate/{BIRCH}/"))
    assert "Printed code" in birch and "No code" not in birch
    ash = text_of(rep.get(f"/moderate/{ASH}/"))
    assert "Jo Nocode" in ash and "Carer or guardian" in ash
    assert "No code — check before approving" in ash
    assert "Names their child as Amelia R. — no code given" in ash
    assert "no mobile given" in ash
    assert "Approve only if you know this family: you will be recorded as vouching for them." in ash


# --- Pages: vouching ----------------------------------------------------------------------------


def test_no_code_request_offers_vouch_not_approve_and_explains_a_forced_approve(browser, db, moderator, ash_rep_id):
    """A no-code request offers only 'Vouch and approve'; a forged Approve is refused with why; vouching works."""
    waiting = ask_without_code(browser, db)
    page = moderator.get(f"/moderate/{ASH}/").get_data(as_text=True)
    assert f"/requests/{waiting.id}/vouch" in page and f"/requests/{waiting.id}/approve" not in page

    forced = moderator.client.post(
        f"/moderate/{ASH}/requests/{waiting.id}/approve", data={"csrf_token": Browser.hidden_fields(page)["csrf_token"]}
    )
    assert forced.status_code == 303
    assert "Sam Parent gave no code" in text_of(moderator.get(forced.headers["Location"]))
    assert membership_of_id(db, waiting.id).status == Status.PENDING_APPROVAL

    vouched = press(moderator, ASH, "vouch", waiting.id)
    assert vouched.status_code == 303
    assert "You vouched for Sam Parent and approved them." in text_of(moderator.get(vouched.headers["Location"]))
    membership = membership_of_id(db, waiting.id)
    assert membership.verified_by == "moderator" and membership.vouched_by_user_id == ash_rep_id
    assert membership.status == Status.INVITED
    assert len(outbox(db, to=DETAILS["email"], kind="invite")) == 1


def test_vouching_for_a_coded_request_says_there_is_nothing_to_vouch_for(journey, db, birch_rep):
    """Posting Vouch for a request that came with a code is refused with a message, and nothing changes."""
    waiting = ask_with_code(journey, db)
    before = decision_state(db, waiting.id)
    token = Browser.hidden_fields(birch_rep.get(f"/moderate/{BIRCH}/").get_data(as_text=True))["csrf_token"]

    refused = birch_rep.client.post(f"/moderate/{BIRCH}/requests/{waiting.id}/vouch", data={"csrf_token": token})

    assert refused.status_code == 303
    assert "there is nothing to vouch for" in text_of(birch_rep.get(refused.headers["Location"]))
    assert decision_state(db, waiting.id) == before


# --- Pages: declining ---------------------------------------------------------------------------


def test_declining_through_the_page_tells_the_parent(journey, browser, db, birch_rep):
    """Decline asks for a reason, emails the parent with it when ticked, and their waiting page says not approved."""
    waiting = ask_with_code(journey, db)
    url = f"/moderate/{BIRCH}/requests/{waiting.id}/reject"
    assert f'action="{url}"' in birch_rep.get(f"/moderate/{BIRCH}/").get_data(as_text=True)
    form = birch_rep.get(url)
    assert form.status_code == 200
    assert "Decline Sam Parent’s request" in text_of(form)
    assert "Tell Sam Parent this reason in the email" in text_of(form)

    missing = birch_rep.submit(url, {"reason": "  "})
    assert missing.status_code == 400
    assert error_summary(missing) == [("#reason", "Enter a reason for declining the request")]
    assert membership_of_id(db, waiting.id).status == Status.PENDING_APPROVAL

    declined = birch_rep.submit(url, {"reason": "This is the Year 4 group; Amelia is in Year 3.", "tell_parent": "y"})
    assert declined.status_code == 303 and declined.headers["Location"].endswith(f"/moderate/{BIRCH}/")
    assert "You declined Sam Parent’s request. We have emailed them with your reason." in text_of(
        birch_rep.get(declined.headers["Location"])
    )
    (message,) = outbox(db, to=DETAILS["email"], kind="request-declined")
    assert "Amelia is in Year 3" in message.body_text and "school office" in message.body_text

    waiting_page = browser.get(f"/join/{BIRCH}/waiting")
    assert waiting_page.status_code == 302
    assert "Your request was not approved" in text_of(browser.get(waiting_page.headers["Location"]))

    again = birch_rep.get(url)
    assert again.status_code == 303
    assert "already been declined" in text_of(birch_rep.get(again.headers["Location"]))


# --- Pages: who may press what ------------------------------------------------------------------


@pytest.mark.parametrize("action", ["approve", "vouch", "reject"])
def test_a_post_without_the_csrf_token_is_refused(journey, db, birch_rep, action):
    """Another site cannot approve, vouch or decline for a moderator: no token, 400, and nothing changes."""
    waiting = ask_with_code(journey, db)
    before = decision_state(db, waiting.id)

    response = birch_rep.client.post(
        f"/moderate/{BIRCH}/requests/{waiting.id}/{action}", data={"reason": "Spam", "tell_parent": "y"}
    )

    assert response.status_code == 400
    assert decision_state(db, waiting.id) == before


@pytest.mark.parametrize(("method", "action"), [("POST", "approve"), ("POST", "vouch"), ("POST", "reject"),
                                                ("GET", "reject")])
def test_another_groups_moderator_and_membership_are_not_found(
    journey: Any, browser: Browser, db: Session, moderator: Browser, make_browser: Callable[[], Browser],
    method: str, action: str,
) -> None:
    """Year 2 Ash's moderator gets 404 for a Birch request, under Birch's URL or smuggled under Ash's."""
    birch_request = ask_with_code(journey, db)
    ask_without_code(make_browser(), db, email="ash@example.com")
    token = Browser.hidden_fields(moderator.get(f"/moderate/{ASH}/").get_data(as_text=True))["csrf_token"]
    before = decision_state(db, birch_request.id)

    for slug in (BIRCH, ASH):
        url = f"/moderate/{slug}/requests/{birch_request.id}/{action}"
        data = {"csrf_token": token, "reason": "Not known"} if method == "POST" else None
        response = moderator.client.open(url, method=method, data=data)
        assert response.status_code == 404, f"{method} {url} answered {response.status_code}"

    assert decision_state(db, birch_request.id) == before


def test_moderator_pending_email_links_to_the_group_page(journey, db, birch_rep_id, make_browser):
    """The 'parent waiting' email's link works: signed out it asks to sign in, then returns to the requests."""
    ask_with_code(journey, db)
    (alert,) = outbox(db, to=BIRCH_REP, kind="moderator-pending")
    assert link_in(alert) == f"http://classgate.test/moderate/{BIRCH}/"
    phone = make_browser()
    first = phone.get(link_in(alert))
    assert first.status_code == 302 and f"next=/moderate/{BIRCH}/" in first.headers["Location"]
    signed_in = phone.submit(first.headers["Location"], {"email": BIRCH_REP, "password": PASSWORD})
    assert signed_in.headers["Location"] == f"/moderate/{BIRCH}/"
    assert "Sam Parent" in text_of(phone.get(signed_in.headers["Location"]))
