"""Signing in and out, and the moderator notice that comes before anything else."""

from __future__ import annotations

import pytest
from sqlmodel import select

from membership import policies, schools
from membership.db import session_scope
from membership.models import DocumentKind, LedgerEntry, Role, User

from .conftest import PASSWORD, sign_in, text_of


def test_moderator_signs_in_and_lands_on_their_groups(make_account, browser):
    """Right email and password: the moderator sees their groups."""
    make_account("rep@elm.example")
    response = sign_in(browser, "rep@elm.example")
    assert response.status_code == 303 and response.headers["Location"].endswith("/moderate/")
    assert "Year 2 Ash" in text_of(browser.get("/moderate/"))


@pytest.mark.parametrize(
    ("email", "password"),
    [("rep@elm.example", "wrong password here"), ("nobody@elm.example", PASSWORD), ("not-an-email", PASSWORD)],
)
def test_failed_sign_in_says_the_same_thing_whatever_was_wrong(make_account, browser, email, password):
    """Wrong password, unknown email and nonsense all get one message, so accounts cannot be found out."""
    make_account("rep@elm.example")
    response = sign_in(browser, email, password)
    assert response.status_code == 400
    assert "The email address or password is not right" in text_of(response)
    assert browser.get("/moderate/").status_code == 302


def test_stood_down_account_cannot_sign_in(make_account, browser):
    """An account switched off by the school is refused with the same message."""
    user_id = make_account("rep@elm.example")
    with session_scope() as session:
        session.get(User, user_id).active = False
    assert sign_in(browser, "rep@elm.example").status_code == 400


@pytest.fixture
def config(config):
    """Tighter sign-in limits than the default test settings, for the rate-limit test."""
    return {**config, "SIGNIN_LIMIT_PER_ACCOUNT": "3 per hour"}


def test_sign_in_is_rate_limited_per_account(make_account, make_browser):
    """Guessing one account's password from many phones is stopped after a few tries."""
    make_account("rep@elm.example")
    statuses = []
    for _ in range(4):
        phone = make_browser()
        statuses.append(sign_in(phone, "rep@elm.example", "wrong password!!").status_code)
    assert statuses == [400, 400, 400, 429]
    assert "Too many attempts" in text_of(phone.last)


@pytest.mark.parametrize(
    ("target", "lands"),
    [
        ("/moderate/year-2-ash/", "/moderate/year-2-ash/"),
        ("https://evil.example/phish", "/moderate/"),
        ("//evil.example/phish", "/moderate/"),
        ("/\\evil.example", "/moderate/"),
    ],
)
def test_next_only_returns_to_classgate_pages(make_account, browser, target, lands):
    """After signing in, `next` can send you back to a Classgate page but never to another site."""
    make_account("rep@elm.example")
    response = browser.submit(f"/login?next={target}", {"email": "rep@elm.example", "password": PASSWORD})
    assert response.status_code == 303
    assert response.headers["Location"] == lands


def test_moderator_pages_send_signed_out_visitors_to_sign_in(client, school):
    """Opening a moderator page signed out leads to the sign-in page and back."""
    response = client.get("/moderate/year-2-ash/")
    assert response.status_code == 302
    assert "/login?next=/moderate/year-2-ash/" in response.headers["Location"]


def test_sign_out_ends_the_session(moderator):
    """After signing out, moderator pages ask for sign-in again."""
    page = moderator.get("/moderate/")
    assert "Sign out" in text_of(page)
    token = moderator.hidden_fields(page.get_data(as_text=True))["csrf_token"]
    assert moderator.client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert moderator.get("/moderate/").status_code == 302


def test_sign_out_needs_the_csrf_token(moderator):
    """Another site cannot sign a moderator out: a POST without the token changes nothing."""
    assert moderator.client.post("/logout").status_code == 400
    assert moderator.get("/moderate/").status_code == 200


def test_changing_the_password_ends_other_sessions(moderator, db):
    """Once the password changes, a session signed in with the old one is signed out."""
    with session_scope() as session:
        user = session.exec(select(User).where(User.email == "rep@elm.example")).one()
        schools.set_password(user, "a brand new passphrase")
    assert moderator.get("/moderate/").status_code == 302


def test_moderator_must_accept_the_notice_first(make_account, browser, db):
    """A new moderator sees the notice before anything else, and accepting it is in the ledger."""
    make_account("new@elm.example", accept_notice=False)
    sign_in(browser, "new@elm.example")
    for path in ("/moderate/", "/moderate/year-2-ash/"):
        response = browser.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/moderate/notice")
    page = browser.get("/moderate/notice")
    assert "I have read the moderator notice (version 1" in text_of(page)

    refused = browser.submit("/moderate/notice", {})
    assert refused.status_code == 400
    assert "Tick the box to accept the moderator notice" in text_of(refused)

    accepted = browser.submit("/moderate/notice", {"accept": "y"})
    assert accepted.status_code == 303
    assert browser.get("/moderate/").status_code == 200
    db.commit()
    entry = db.exec(select(LedgerEntry).where(LedgerEntry.action == "accept_moderator_notice")).one()
    assert entry.document_kind == DocumentKind.MODERATOR_NOTICE and entry.document_version == 1
    assert entry.document_sha256 and entry.statement.startswith("I have read the moderator notice")


@pytest.mark.parametrize(("material", "asked_again"), [(True, True), (False, False)])
def test_new_notice_version_asks_again_only_when_material(moderator, material, asked_again):
    """A material change to the moderator notice asks every moderator to accept it again; a minor one does not."""
    with session_scope() as session:
        school = schools.school_by_slug(session, "elm-primary")
        policies.publish(session, school.id, DocumentKind.MODERATOR_NOTICE, "New duties.", material=material)
    response = moderator.get("/moderate/")
    assert (response.status_code == 302) is asked_again
    if asked_again:
        assert "new version of the moderator notice" in text_of(moderator.get("/moderate/notice"))


def test_staff_account_signs_in_too(make_account, browser):
    """Staff use the same sign-in page."""
    make_account("office@elm.example", Role.STAFF, (), accept_notice=False)
    assert sign_in(browser, "office@elm.example").status_code == 303
