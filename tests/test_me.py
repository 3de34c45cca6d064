"""Parents' own pages at /me/: the emailed sign-in link, the signed-in session, and who may see what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from membership import tokens
from membership.models import Membership, ParentSignIn, Person

from .conftest import DETAILS, Browser, csrf_token, error_summary, link_in, outbox, snapshot, text_of

EMAIL = DETAILS["email"]


# --- Helpers shared by the other test_me_* modules ---------------------------------------------


def join(phone: Browser, db, code: str, slug: str = "year-2-ash", **details) -> Membership:
    """Take a parent on this phone through a group's journey with a code; returns their membership."""
    details = {**DETAILS, **details}
    assert phone.submit(f"/join/{slug}", {"code": code}).status_code == 303
    assert phone.submit(f"/join/{slug}/details", details).status_code in (302, 303)
    phone.get(link_in(outbox(db, to=details["email"], kind="verify-email")[-1]))
    phone.submit(f"/join/{slug}/agree", {"agree_coc": "y", "acknowledge_notice": "y"})
    db.commit()
    return db.exec(
        select(Membership).join(Person, Person.id == Membership.person_id)
        .where(Person.email == details["email"]).order_by(Membership.id.desc())
    ).first()


def ask_for_link(phone: Browser, email: str = EMAIL):
    """Ask /me/ to email a sign-in link; returns the response."""
    return phone.submit("/me/", {"email": email})


def sign_in_link(db, email: str = EMAIL) -> str:
    """The newest sign-in link emailed to this address."""
    return link_in(outbox(db, to=email, kind="parent-sign-in")[-1])


def sign_in(phone: Browser, db, email: str = EMAIL) -> Browser:
    """Sign a parent in the way they would: ask for a link, open it, press 'Sign in'."""
    assert ask_for_link(phone, email).status_code == 303
    response = phone.submit(sign_in_link(db, email))
    assert response.status_code == 303, text_of(response)
    assert response.headers["Location"].endswith("/me/")
    return phone


def sign_in_rows(db) -> list[ParentSignIn]:
    """Every sign-in row, oldest first."""
    db.commit()
    return list(db.exec(select(ParentSignIn).order_by(ParentSignIn.id)).all())


# --- Asking for a link ------------------------------------------------------------------------


def test_a_known_address_gets_a_link_and_an_unknown_one_the_same_page(journey, make_browser, db):
    """Whether or not the address joined, the answer is the same page; only a known address gets mail."""
    journey.through_agree()
    known, unknown = make_browser(), make_browser()

    first = ask_for_link(known, EMAIL)
    second = ask_for_link(unknown, "nobody@example.com")

    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    page_known = text_of(known.get(first.headers["Location"]))
    page_unknown = text_of(unknown.get(second.headers["Location"]))
    assert page_known.replace(EMAIL, "X") == page_unknown.replace("nobody@example.com", "X")
    assert "If sam@example.com was used to join a class group, we have sent a link to it" in page_known
    assert "works once, for 30 minutes" in page_known
    assert "spam" in page_known and "the address you joined with" in page_known
    assert len(outbox(db, to=EMAIL, kind="parent-sign-in")) == 1
    assert outbox(db, to="nobody@example.com") == []
    assert [row.email for row in sign_in_rows(db)] == [EMAIL]


def test_the_email_has_a_link_that_works_once_for_30_minutes(journey, make_browser, db):
    """The message says what the link is for, how long it lasts, and that it can be ignored."""
    journey.through_agree()
    ask_for_link(make_browser(), "Sam@Example.COM ")
    message = outbox(db, to=EMAIL, kind="parent-sign-in")[-1]
    assert message.person_id is not None
    assert "/me/sign-in/" in link_in(message)
    assert "works once, for 30 minutes" in message.body_text
    assert "Sam Parent" in message.body_text
    assert "ignore this email" in message.body_text


def test_send_again_sends_another_link(journey, make_browser, db):
    """The 'Send the link again' button on the check-your-email page sends a second link."""
    journey.through_agree()
    phone = make_browser()
    ask_for_link(phone)
    form = Browser.hidden_fields(phone.get("/me/check-email").get_data(as_text=True))
    assert form["email"] == EMAIL
    response = phone.client.post("/me/", data=form)
    assert response.status_code == 303
    assert len(outbox(db, to=EMAIL, kind="parent-sign-in")) == 2


FORMAT = "Enter an email address in the correct format, like name@example.com"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter your email address"),
        ("not an email", FORMAT),
        ("a" * 300 + "@example.com", FORMAT),
        ("sam@" + "a" * 5000 + ".com", FORMAT),
        ("sam\x00@example.com", FORMAT),
        ("sam@exa\u202emple.com", FORMAT),
        ("sam@example.com\r\nBcc: x@example.com", FORMAT),
    ],
)
def test_a_bad_address_gets_a_clear_error_and_nothing_is_stored(journey, make_browser, db, typed, message):
    """Hostile or mistyped input is turned away with the error summary; nothing is stored or sent."""
    journey.through_agree()
    before = snapshot(db)
    response = ask_for_link(make_browser(), typed)
    assert response.status_code == 400
    assert error_summary(response) == [("#email", message)]
    assert snapshot(db) == before
    assert sign_in_rows(db) == []


def test_posts_without_a_csrf_token_are_refused(journey, make_browser, db, app):
    """Every /me/ form needs its CSRF token, signed in or not."""
    journey.through_agree()
    stranger = make_browser()
    assert stranger.client.post("/me/", data={"email": EMAIL}).status_code == 400
    assert sign_in_rows(db) == []

    ask_for_link(stranger)
    link = Browser.path(sign_in_link(db))
    assert stranger.client.post(link, data={}).status_code == 400
    assert sign_in_rows(db)[0].used_at is None

    parent = sign_in(make_browser(), db)
    membership_id = db.exec(select(Membership.id)).first()
    for url in (f"/me/groups/{membership_id}/leave", f"/me/groups/{membership_id}/reagree", "/me/erase",
                "/me/sign-out"):
        assert parent.client.post(url, data={"understand": "y"}).status_code == 400, url
    db.commit()
    assert db.get(Membership, membership_id).status == "invited"
    assert db.exec(select(func.count()).select_from(Person).where(Person.email == EMAIL)).one() == 1


# --- The link: look, then press ----------------------------------------------------------------


def test_opening_the_link_uses_nothing_and_pressing_sign_in_does(journey, make_browser, db):
    """Mail scanners may open the link as often as they like; only the button signs in."""
    journey.through_agree()
    phone = make_browser()
    ask_for_link(phone)
    link = sign_in_link(db)

    for _ in range(3):
        page = make_browser().get(link)
        assert page.status_code == 200
        assert "Sign in to see your class groups" in text_of(page)
    assert sign_in_rows(db)[0].used_at is None

    response = phone.submit(link)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/me/")
    assert sign_in_rows(db)[0].used_at is not None
    page = text_of(phone.get("/me/"))
    assert "Signed in as sam@example.com" in page
    assert "Year 2 Ash" in page


def test_a_used_link_is_refused_with_a_way_to_get_a_new_one(journey, make_browser, db):
    """Once used, the link answers 410 on GET and POST and offers the email form."""
    journey.through_agree()
    sign_in(make_browser(), db)
    link = sign_in_link(db)
    other = make_browser()
    for response in (other.get(link), other.client.post(Browser.path(link), data={"csrf_token": csrf_token(other)})):
        assert response.status_code == 410
        assert "This link has already been used" in text_of(response)
        assert "Enter the email address you joined with" in text_of(response)
    assert other.get("/me/").status_code == 200
    assert "Signed in as" not in text_of(other.last)


def test_pressing_sign_in_twice_signs_in_only_once(journey, make_browser, db):
    """Two phones pressing one link's button: the first signs in, the second is told it was used."""
    journey.through_agree()
    ask_for_link(make_browser())
    link = sign_in_link(db)
    first, second = make_browser(), make_browser()
    tokens_ = [Browser.hidden_fields(phone.get(link).get_data(as_text=True))["csrf_token"] for phone in (first, second)]
    statuses = [
        phone.client.post(Browser.path(link), data={"csrf_token": token}).status_code
        for phone, token in zip((first, second), tokens_, strict=True)
    ]
    assert statuses == [303, 410]
    assert "Signed in as" in text_of(first.get("/me/"))
    assert "Signed in as" not in text_of(second.get("/me/"))


@pytest.fixture
def expire_rows(db):
    """Make every sign-in link's row out of date (its expiry in the past)."""

    def expire() -> None:
        for row in sign_in_rows(db):
            row.expires_at = row.created_at - timedelta(minutes=1)
            db.add(row)
        db.commit()

    return expire


def test_an_expired_link_is_refused(journey, make_browser, db, expire_rows):
    """A link past its 30 minutes answers 410 and offers a new one; pressing the button signs nobody in."""
    journey.through_agree()
    phone = make_browser()
    ask_for_link(phone)
    link = sign_in_link(db)
    expire_rows()
    response = phone.get(link)
    assert response.status_code == 410
    assert "This link has expired" in text_of(response)
    assert "Sign-in links work for 30 minutes" in text_of(response)
    response = phone.client.post(Browser.path(link), data={"csrf_token": csrf_token(phone, "/me/")})
    assert response.status_code == 410
    assert sign_in_rows(db)[0].used_at is None


def test_a_link_older_than_its_lifetime_is_refused_by_its_signature(journey, make_browser, db, app):
    """The token itself carries its age: a shorter lifetime makes an issued link expired."""
    journey.through_agree()
    phone = make_browser()
    ask_for_link(phone)
    app.config["PARENT_LINK_MINUTES"] = -1
    response = phone.get(sign_in_link(db))
    assert response.status_code == 410
    assert "This link has expired" in text_of(response)


def test_invalid_links_are_not_found(journey, make_browser, db):
    """A changed, cut-short or forged link answers 404 with the email form."""
    journey.through_agree()
    phone = make_browser()
    ask_for_link(phone)
    link = sign_in_link(db)
    row = sign_in_rows(db)[0]
    forged = [
        link[:-3],
        link.rsplit("/", 1)[0] + "/not-a-token",
        "/me/sign-in/" + tokens.issue("parent-sign-in", {"s": row.id + 1000, "n": "x"}),
        "/me/sign-in/" + tokens.issue("parent-sign-in", {"s": row.id, "n": "a wrong secret"}),
        "/me/sign-in/" + tokens.issue("parent-sign-in", {"s": str(row.id), "n": "x"}),
        "/me/sign-in/" + tokens.issue("reagree", {"s": row.id, "n": "x"}),
    ]
    for url in forged:
        response = phone.get(url)
        assert response.status_code == 404, url
        assert "This link does not work" in text_of(response)
        assert "Enter the email address you joined with" in text_of(response)
    assert sign_in_rows(db)[0].used_at is None


# --- The signed-in session ------------------------------------------------------------------------

PRIVATE_PAGES = ["/me/data.json", "/me/erase", "/me/groups/{id}/leave", "/me/groups/{id}/reagree"]


@pytest.mark.parametrize("page", PRIVATE_PAGES)
def test_private_pages_send_strangers_to_sign_in(journey, make_browser, db, page):
    """Without signing in, every page about a parent's groups sends you to the sign-in form."""
    journey.through_agree()
    membership_id = db.exec(select(Membership.id)).first()
    response = make_browser().get(page.format(id=membership_id))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/me/")


def test_the_session_ends_after_its_time(journey, make_browser, db):
    """An hour after pressing 'Sign in', the pages ask for a new link."""
    journey.through_agree()
    phone = sign_in(make_browser(), db)
    assert phone.get("/me/data.json").status_code == 200

    def signed_in_minutes_ago(minutes: int) -> None:
        for row in sign_in_rows(db):
            row.used_at = row.used_at - timedelta(minutes=minutes)
            db.add(row)
        db.commit()

    signed_in_minutes_ago(59)
    assert phone.get("/me/data.json").status_code == 200
    signed_in_minutes_ago(2)
    response = phone.get("/me/data.json")
    assert response.status_code == 303
    page = text_of(phone.get(response.headers["Location"]))
    assert "You have been signed out" in page
    assert "Enter the email address you joined with" in page


def test_signing_out_ends_the_session_for_any_copy_of_it(journey, make_browser, db):
    """Sign out is a POST; afterwards even a copy of the old cookie signs nobody in."""
    journey.through_agree()
    phone = sign_in(make_browser(), db)
    copied = make_browser()
    cookie = phone.client.get_cookie("session")
    copied.client.set_cookie("session", cookie.value)
    assert "Signed in as" in text_of(copied.get("/me/"))

    response = phone.client.post("/me/sign-out", data={"csrf_token": csrf_token(phone, "/me/")})
    assert response.status_code == 303
    page = text_of(phone.get("/me/"))
    assert "You have signed out" in page
    assert "Signed in as" not in page
    assert sign_in_rows(db)[0].signed_out_at is not None
    assert copied.get("/me/data.json").status_code == 303


def test_a_staff_sign_in_does_not_open_the_parents_pages(journey, staff, db):
    """Staff and moderators sign in separately; their session is no parent's."""
    journey.through_agree()
    response = staff.get("/me/data.json")
    assert response.status_code == 303
