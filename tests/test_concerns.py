"""Raising a concern with a school, and the staff inbox: confidential to the school's staff."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func
from sqlmodel import select

from membership import concerns, schools
from membership.db import session_scope
from membership.models import Concern, ConcernStatus, ConcernUpdate, OutboxMessage, Role, School, User, utcnow

from .conftest import PASSWORD, counting_statements, error_summary, outbox, sign_in, text_of

PUBLIC = "/concerns/elm-primary"
WHAT = "A parent posted a photo of another child without asking.\nIt was in the Ash group on Monday evening."
CONTACT = {"contact_name": "Robin Reporter", "contact_email": "robin@example.com", "contact_phone": "07911 123456"}


@pytest.fixture
def config(config: dict) -> dict:
    """Room for every concern these tests send; the rate-limit tests set their own small limits."""
    return {**config, "CONCERN_LIMIT_PER_CLIENT": "1000 per hour", "CONCERN_LIMIT_PER_SCHOOL": "1000 per hour"}


def ash_id(db) -> int:
    """Year 2 Ash's id, as the form's select carries it."""
    db.commit()
    return schools.group_by_slug(db, "year-2-ash").id


def counts(db) -> dict[str, int]:
    """What a concern or a status change could add."""
    db.commit()

    def count(model) -> int:
        return db.exec(select(func.count()).select_from(model)).one()

    return {"concerns": count(Concern), "updates": count(ConcernUpdate), "outbox": count(OutboxMessage)}


def only_concern(db) -> Concern:
    """The one concern in the database, fresh."""
    db.commit()
    return db.exec(select(Concern)).one()


@pytest.fixture
def make_concern(app, school):
    """A factory: a concern raised with Elm Primary through the domain (emails and all), returning its id."""

    def make(what: str = WHAT, group: str = concerns.NOT_SURE, **contact) -> int:
        with session_scope() as session:
            elm = schools.school_by_slug(session, "elm-primary")
            details = concerns.ConcernDetails(group=group, what_happened=what, **contact)
            return concerns.raise_concern(session, elm, details).id

    return make




# --- The public page ----------------------------------------------------------------------------


def test_the_page_gives_the_policies_routes_and_says_who_reads_it(browser, school) -> None:
    """Class teacher first, then the headteacher, the complaints procedure and 999; moderators never see it."""
    response = browser.get(PUBLIC)
    page = text_of(response)
    assert response.status_code == 200
    assert "Elm Primary School" in page
    assert "speak to your child’s class teacher first" in page
    assert "ask the school office to arrange for you to speak to the headteacher" in page
    assert "ask the school office for a copy of the school’s complaints procedure" in page
    assert "call 999" in page and "children’s services" in page
    assert "senior staff at Elm Primary School, in confidence" in page
    assert "moderators are volunteer parents: they never see it" in page
    assert "What happens next" in page
    html = response.get_data(as_text=True)
    assert re.search(r'<option value="\d+">Year 2 Ash \(', html) and "Year 4 Birch" in html
    assert '<option value="none">Not about one group</option>' in html
    assert "I’m not sure" in html


def test_the_page_links_to_the_complaints_procedure_when_the_school_has_one(browser, school, db) -> None:
    """With a complaints link set, the page links to it instead of sending people to the office."""
    with session_scope() as session:
        elm = schools.school_by_slug(session, "elm-primary")
        elm.complaints_url = "https://elm.example.sch.uk/complaints-procedure"
    response = browser.get(PUBLIC)
    assert 'href="https://elm.example.sch.uk/complaints-procedure"' in response.get_data(as_text=True)
    assert "follow the school’s complaints procedure" in text_of(response)
    assert "ask the school office for a copy" not in text_of(response)


def test_an_unknown_school_is_not_found(browser, school) -> None:
    """A mistyped school address is a plain 404."""
    assert browser.get("/concerns/no-such-school").status_code == 404
    assert browser.get("/concerns/no-such-school/sent").status_code == 404


# --- Sending a concern --------------------------------------------------------------------------


def test_a_concern_is_stored_and_the_school_told_without_what_it_says(
    browser, make_account, db, school
) -> None:
    """Staff and the concerns address get a link and the reference only; the sender gets an acknowledgement."""
    make_account("office@elm.example", Role.STAFF, (), accept_notice=False)  # also the concerns address
    make_account("head@elm.example", Role.STAFF, (), accept_notice=False)
    make_account("deputy@elm.example", Role.STAFF, (), accept_notice=False)
    make_account("gone@elm.example", Role.STAFF, (), accept_notice=False)
    make_account("rep@elm.example")  # a moderator of Year 2 Ash
    with session_scope() as session:
        session.exec(select(User).where(User.email == "gone@elm.example")).one().active = False

    response = browser.submit(PUBLIC, {"group": str(ash_id(db)), "what_happened": WHAT, **CONTACT})
    assert response.status_code == 303
    concern = only_concern(db)
    assert (concern.school_id, concern.group_id, concern.status) == (school.id, ash_id(db), "new")
    assert concern.what_happened == WHAT
    assert (concern.contact_name, concern.contact_email, concern.contact_phone) == (
        "Robin Reporter", "robin@example.com", "+447911123456")
    ref = f"C-{concern.id:06d}"

    sent = browser.get(response.headers["Location"])
    assert sent.status_code == 200
    assert ref in text_of(sent) and "We have emailed you the reference too" in text_of(sent)

    told = outbox(db, kind="concern-received")
    assert sorted(m.to_addr for m in told) == ["deputy@elm.example", "head@elm.example", "office@elm.example"]
    for message in told:
        assert ref in message.subject and f"/school/concerns/{concern.id}" in message.body_text
        for secret in ("photo", "Monday", "Robin", "robin@example.com", "7911", "Year 2 Ash"):
            assert secret not in message.subject + message.body_text, secret
    assert outbox(db, to="rep@elm.example") == []

    (ack,) = outbox(db, kind="concern-acknowledgement")
    assert ack.to_addr == "robin@example.com" and ref in ack.subject and ref in ack.body_text
    assert "Hello Robin Reporter" in ack.body_text and "What happens next" in ack.body_text
    assert "photo" not in ack.body_text and "Monday" not in ack.body_text


def test_no_acknowledgement_without_an_email_address(browser, staff, db) -> None:
    """An anonymous concern is stored and the school told; there is nobody to acknowledge it to."""
    response = browser.submit(PUBLIC, {"group": concerns.NOT_ONE_GROUP, "what_happened": "Unkind posts."})
    assert response.status_code == 303
    concern = only_concern(db)
    assert concern.group_id is None and concern.contact_email is None and concern.contact_name is None
    assert outbox(db, kind="concern-acknowledgement") == []
    assert [m.to_addr for m in outbox(db, kind="concern-received")] == ["office@elm.example"]
    sent = text_of(browser.get(response.headers["Location"]))
    assert f"C-{concern.id:06d}" in sent and "emailed you" not in sent


def test_the_sent_page_shows_only_your_own_reference(make_browser, school) -> None:
    """Someone who has not sent a concern from this browser is taken to the form, not shown a reference."""
    assert make_browser().get(f"{PUBLIC}/sent").status_code == 302


def test_a_full_5000_characters_with_windows_line_ends_is_accepted(browser, school, db) -> None:
    """Line breaks count once, whatever the browser sends, so 5,000 characters fit exactly."""
    text = ("x" * 99 + "\n") * 49 + "x" * 100
    assert len(text) == 5000
    response = browser.submit(PUBLIC, {"group": concerns.NOT_SURE, "what_happened": text.replace("\n", "\r\n")})
    assert response.status_code == 303
    assert only_concern(db).what_happened == text


@pytest.mark.parametrize(
    ("changes", "target", "message"),
    [
        ({"what_happened": ""}, "#what_happened", "Enter what happened"),
        ({"what_happened": "   \r\n  "}, "#what_happened", "Enter what happened"),
        ({"what_happened": "x" * 5001}, "#what_happened", "What happened must be 5,000 characters or fewer"),
        ({"what_happened": "Rude posts\x00 again"}, "#what_happened", "What happened must only include"),
        ({"what_happened": "Rude \x1b[31mposts"}, "#what_happened", "What happened must only include"),
        ({"what_happened": "Rude \u202eposts"}, "#what_happened", "What happened must only include"),
        ({"contact_email": "robin@"}, "#contact_email", "Enter an email address in the correct format"),
        ({"contact_phone": "12345"}, "#contact_phone", "Enter a mobile number"),
        ({"contact_name": "12345"}, "#contact_name", "Your name must include letters"),
        ({"group": ""}, "#group", "Select the group it is about, or ‘I’m not sure’"),
        ({"group": "999999"}, "#group", "Select a group from the list"),
        ({"group": "year-2-ash"}, "#group", "Select a group from the list"),
        ({"group": "１"}, "#group", "Select a group from the list"),
    ],
)
def test_bad_input_shows_the_form_again_and_stores_nothing(browser, staff, db, changes, target, message) -> None:
    """Each mistake is named in the error summary, what was typed is kept, and nothing is stored or sent."""
    before = counts(db)
    data = {"group": str(ash_id(db)), "what_happened": "Keep this text, please.", **CONTACT, **changes}
    response = browser.submit(PUBLIC, data)
    assert response.status_code == 400
    summary = error_summary(response)
    assert any(t == target and m.startswith(message) for t, m in summary), summary
    html = response.get_data(as_text=True)
    if "what_happened" not in changes:
        assert "Keep this text, please." in html
    assert "Robin Reporter" in html or "contact_name" in changes
    assert counts(db) == before


def test_another_schools_group_is_refused(browser, staff, other_school, db) -> None:
    """A forged group id from another school is refused, and nothing is stored."""
    from membership.models import Group

    db.commit()
    pine_group = db.exec(select(Group).where(Group.slug == other_school["slug"])).one()
    before = counts(db)
    response = browser.submit(PUBLIC, {"group": str(pine_group.id), "what_happened": WHAT})
    assert response.status_code == 400
    assert ("#group", "Select a group from the list") in error_summary(response)
    assert counts(db) == before


def test_a_post_without_the_form_token_is_refused(client, staff, db) -> None:
    """A concern posted from another site (no CSRF token) is refused with 400 and nothing is stored."""
    before = counts(db)
    response = client.post(PUBLIC, data={"group": concerns.NOT_SURE, "what_happened": WHAT})
    assert response.status_code == 400
    assert counts(db) == before


class TestRateLimits:
    """Concerns are limited per client and per school, so nobody can flood a school's inbox."""

    @pytest.fixture
    def config(self, config: dict) -> dict:
        """Two concerns per client, three per school (per hour, far longer than the test takes)."""
        return {**config, "CONCERN_LIMIT_PER_CLIENT": "2 per hour", "CONCERN_LIMIT_PER_SCHOOL": "3 per hour"}

    @staticmethod
    def phone(make_browser, address: str):
        """A browser on its own network address."""
        browser = make_browser()
        browser.client.environ_base["REMOTE_ADDR"] = address
        return browser

    def test_a_third_concern_from_one_client_is_paused(self, make_browser, school, db) -> None:
        """Mistakes do not count; the third concern sent is refused with 429 and not stored."""
        phone = self.phone(make_browser, "10.0.0.1")
        assert phone.submit(PUBLIC, {"group": concerns.NOT_SURE, "what_happened": ""}).status_code == 400
        for n in range(2):
            sent = phone.submit(PUBLIC, {"group": concerns.NOT_SURE, "what_happened": f"Concern {n}"})
            assert sent.status_code == 303
        before = counts(db)
        paused = phone.submit(PUBLIC, {"group": concerns.NOT_SURE, "what_happened": "One more"})
        assert paused.status_code == 429
        assert "Too many attempts" in text_of(paused)
        assert counts(db) == before
        other = self.phone(make_browser, "10.0.0.2")
        assert other.submit(PUBLIC, {"group": concerns.NOT_SURE, "what_happened": "Mine"}).status_code == 303

    def test_a_school_receives_a_limited_number_whoever_sends_them(
        self, make_browser, other_school, db
    ) -> None:
        """Concerns from many clients add up per school; another school's page is unaffected."""
        for n in range(3):
            phone = self.phone(make_browser, f"10.0.1.{n}")
            assert phone.submit(PUBLIC, {"group": concerns.NOT_SURE, "what_happened": f"No. {n}"}).status_code == 303
        before = counts(db)
        late = self.phone(make_browser, "10.0.1.99")
        assert late.submit(PUBLIC, {"group": concerns.NOT_SURE, "what_happened": "Late"}).status_code == 429
        assert counts(db) == before
        pine = late.submit("/concerns/pine-primary", {"group": concerns.NOT_SURE, "what_happened": "At Pine"})
        assert pine.status_code == 303


# --- Who can see a concern ------------------------------------------------------------------------


def test_moderators_never_see_a_concern(moderator, make_concern, db) -> None:
    """A moderator of the group it is about gets 'not found' for it, and no page of theirs shows its text."""
    concern_id = make_concern("SECRET-OBSERVATION about the chat", group=str(ash_id(db)), **CONTACT)
    assert moderator.get(f"/school/concerns/{concern_id}").status_code == 404
    assert moderator.get("/school/concerns").status_code == 404
    for url in ("/moderate/", "/moderate/year-2-ash/", "/moderate/year-2-ash/members",
                "/moderate/year-2-ash/chat-link"):
        response = moderator.get(url)
        assert response.status_code == 200, url
        page = response.get_data(as_text=True)
        assert "SECRET-OBSERVATION" not in page and "Robin Reporter" not in page and "C-0" not in page, url
    assert outbox(db, to="rep@elm.example") == []


def test_another_schools_staff_never_see_a_concern(make_browser, make_concern, other_school) -> None:
    """Staff of Pine Primary get 'not found' for Elm's concern, and their inbox does not list it."""
    concern_id = make_concern("Elm's own business")
    pine = make_browser()
    assert sign_in(pine, "office@pine.example", PASSWORD).status_code == 303
    assert pine.get(f"/school/concerns/{concern_id}").status_code == 404
    inbox = pine.get("/school/concerns")
    assert inbox.status_code == 200
    assert "Elm's own business" not in text_of(inbox) and f"C-{concern_id:06d}" not in text_of(inbox)
    assert "Something at Pine only." in text_of(inbox)


def test_signed_out_visitors_are_asked_to_sign_in(client, make_concern) -> None:
    """The inbox is behind the staff sign-in."""
    response = client.get(f"/school/concerns/{make_concern()}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- The inbox ------------------------------------------------------------------------------------


def refs_on(response) -> list[str]:
    """The references listed in the inbox, in order."""
    return re.findall(r'<th scope="row" data-label="Reference"><a[^>]*>(C-\d+)</a>', response.get_data(as_text=True))


def test_the_inbox_lists_concerns_newest_first_with_their_first_line(staff, make_concern, db) -> None:
    """Each row has the reference, when it came, the group (or none), the status and the first line only."""
    first = make_concern("About Ash\nsecond line stays hidden", group=str(ash_id(db)))
    second = make_concern("Not about one group")
    response = staff.get("/school/concerns")
    assert response.status_code == 200
    assert refs_on(response) == [f"C-{second:06d}", f"C-{first:06d}"]
    page = text_of(response)
    assert "About Ash" in page and "second line stays hidden" not in page
    assert "Year 2 Ash" in page and "Not about one group, or not sure which" in page
    assert "New" in page and 'aria-current="page" href="/school/concerns"' in response.get_data(as_text=True)


def test_the_inbox_filters_by_status_and_counts_each(staff, make_concern) -> None:
    """The tabs count each status; a tab lists only its concerns; an unknown one lists all."""
    ids = [make_concern(f"Concern {n}") for n in range(4)]
    with session_scope() as session:
        user = session.exec(select(User).where(User.email == "office@elm.example")).one()
        concerns.change_status(session, session.get(Concern, ids[0]), user, "in_progress", None)
        concerns.change_status(session, session.get(Concern, ids[1]), user, "closed", None)
    page = text_of(staff.get("/school/concerns"))
    assert "All 4" in page and "New 2" in page and "In progress 1" in page and "Closed 1" in page
    assert refs_on(staff.get("/school/concerns?status=new")) == [f"C-{ids[3]:06d}", f"C-{ids[2]:06d}"]
    assert refs_on(staff.get("/school/concerns?status=in_progress")) == [f"C-{ids[0]:06d}"]
    assert refs_on(staff.get("/school/concerns?status=closed")) == [f"C-{ids[1]:06d}"]
    assert len(refs_on(staff.get("/school/concerns?status=nonsense"))) == 4


def add_concerns(school_id: int, count: int) -> None:
    """Concerns written straight to the database (fast), enough to fill pages."""
    with session_scope() as session:
        for n in range(count):
            session.add(Concern(school_id=school_id, what_happened=f"Bulk concern {n}"))


def test_fifty_to_a_page_in_the_same_number_of_statements(app, staff, school, db) -> None:
    """51 concerns make two pages; the list's statements do not grow with the number of concerns."""
    add_concerns(school.id, 3)
    staff.get("/school/concerns")  # warm up: first-use lookups are not the list's
    with counting_statements(app) as few:
        assert staff.get("/school/concerns").status_code == 200
    add_concerns(school.id, 48)
    with counting_statements(app) as many:
        first = staff.get("/school/concerns")
    assert len(few) == len(many), (len(few), len(many))
    assert len(refs_on(first)) == 50 and "page 1 of 2" in text_of(first)
    assert 'href="/school/concerns?page=2" rel="next"' in first.get_data(as_text=True)
    second = staff.get("/school/concerns?page=2")
    assert len(refs_on(second)) == 1 and "Bulk concern 0" in text_of(second)


# --- One concern ----------------------------------------------------------------------------------


def test_a_concern_shows_in_full_with_its_contact(staff, make_concern, db) -> None:
    """The whole text, the group, and how to reach the sender."""
    concern_id = make_concern(WHAT, group=str(ash_id(db)), **CONTACT)
    response = staff.get(f"/school/concerns/{concern_id}")
    assert response.status_code == 200
    page = text_of(response)
    assert "It was in the Ash group on Monday evening." in page and "posted a photo" in page
    assert "Year 2 Ash" in page and "Robin Reporter" in page and "robin@example.com" in page
    assert "+44 7911 123456" in page


def test_no_contact_and_erased_contact_are_said_plainly(staff, make_concern) -> None:
    """An anonymous concern says so; one whose contact was erased says that instead."""
    anonymous = make_concern("Nobody to reply to")
    assert "No contact given" in text_of(staff.get(f"/school/concerns/{anonymous}"))
    erased = make_concern("Contact went", **CONTACT)
    with session_scope() as session:
        concern = session.get(Concern, erased)
        concern.contact_name = concern.contact_email = concern.contact_phone = None
        concern.contact_erased_at = utcnow()
    page = text_of(staff.get(f"/school/concerns/{erased}"))
    assert "Contact details erased" in page and "Robin" not in page


def test_status_changes_are_kept_with_who_and_when(staff, make_concern, db) -> None:
    """In progress with a note, then closed, then reopened: each is in the history, and closed_at follows."""
    concern_id = make_concern()
    url = f"/school/concerns/{concern_id}"
    response = staff.submit(url, {"status": "in_progress", "note": "Spoke to the parent\r\nby phone."})
    assert response.status_code == 303 and response.headers["Location"].endswith(url)
    page = text_of(staff.get(url))
    assert f"C-{concern_id:06d} is now in progress." in page
    assert "office: marked it in progress" in page and "Spoke to the parent by phone." in page
    assert only_concern(db).closed_at is None

    staff.submit(url, {"status": "closed", "note": ""})
    closed = only_concern(db)
    assert closed.status == ConcernStatus.CLOSED and closed.closed_at is not None

    staff.submit(url, {"status": "closed", "note": "Headteacher wrote to both parents."})
    assert "Your note has been added" in text_of(staff.get(url))
    assert only_concern(db).status == ConcernStatus.CLOSED

    staff.submit(url, {"status": "new", "note": ""})
    reopened = only_concern(db)
    assert reopened.status == ConcernStatus.NEW and reopened.closed_at is None
    updates = db.exec(select(ConcernUpdate).order_by(ConcernUpdate.id)).all()
    assert [(u.status, u.note) for u in updates] == [
        ("in_progress", "Spoke to the parent\nby phone."), ("closed", ""),
        ("closed", "Headteacher wrote to both parents."), ("new", ""),
    ]
    page = text_of(staff.get(url))
    assert "marked it closed" in page and "added a note" in page and "marked it new" in page


@pytest.mark.parametrize(
    ("data", "target", "message"),
    [
        ({"status": "new", "note": ""}, "#note", "Choose a different status, or add a note"),
        ({"status": "archived", "note": "x"}, "#status-0", "Select where the concern stands"),
        ({"status": "closed", "note": "x" * 2001}, "#note", "The note must be 2,000 characters or fewer"),
        ({"status": "closed", "note": "bad\x07bell"}, "#note", "The note must only include"),
    ],
)
def test_a_bad_status_change_changes_nothing(staff, make_concern, db, data, target, message) -> None:
    """Each mistake is shown against its field, and the concern stays as it was."""
    concern_id = make_concern()
    before = counts(db)
    response = staff.submit(f"/school/concerns/{concern_id}", data)
    assert response.status_code == 400
    assert any(t == target and m.startswith(message) for t, m in error_summary(response))
    assert counts(db) == before and only_concern(db).status == ConcernStatus.NEW


# --- Settings and the dashboard -------------------------------------------------------------------


def test_staff_set_where_concerns_go_and_the_complaints_link(staff, browser, db) -> None:
    """A new address gets the next concern's email; the public page links to the new complaints procedure."""
    response = staff.submit("/school/concerns/settings", {
        "concerns_email": "SLT@Elm.example", "complaints_url": "https://elm.example.sch.uk/complaints",
    })
    assert response.status_code == 303
    db.commit()
    elm = db.exec(select(School).where(School.slug == "elm-primary")).one()
    assert (elm.concerns_email, elm.complaints_url) == ("slt@elm.example", "https://elm.example.sch.uk/complaints")
    assert 'href="https://elm.example.sch.uk/complaints"' in browser.get(PUBLIC).get_data(as_text=True)
    browser.submit(PUBLIC, {"group": concerns.NOT_SURE, "what_happened": WHAT})
    assert sorted(m.to_addr for m in outbox(db, kind="concern-received")) == ["office@elm.example", "slt@elm.example"]


@pytest.mark.parametrize(
    ("data", "target"),
    [
        ({"concerns_email": "", "complaints_url": ""}, "#concerns_email"),
        ({"concerns_email": "not an email", "complaints_url": ""}, "#concerns_email"),
        ({"concerns_email": "office@elm.example", "complaints_url": "http://elm.example/complaints"},
         "#complaints_url"),
        ({"concerns_email": "office@elm.example", "complaints_url": "javascript:alert(1)"}, "#complaints_url"),
        ({"concerns_email": "office@elm.example", "complaints_url": "https://elm.example@evil.example/"},
         "#complaints_url"),
        ({"concerns_email": "office@elm.example", "complaints_url": "https://elm example/"}, "#complaints_url"),
    ],
)
def test_bad_settings_are_refused(staff, db, data, target) -> None:
    """Only an email address and an https link are accepted; nothing changes otherwise."""
    response = staff.submit("/school/concerns/settings", data)
    assert response.status_code == 400
    assert target in [t for t, _ in error_summary(response)]
    db.commit()
    elm = db.exec(select(School).where(School.slug == "elm-primary")).one()
    assert (elm.concerns_email, elm.complaints_url) == ("office@elm.example", None)


def test_the_dashboard_counts_new_concerns(staff, make_concern) -> None:
    """The overview says how many concerns are new and links to them; none new says so."""
    assert "There are no new concerns" in text_of(staff.get("/school/"))
    ids = [make_concern(f"Concern {n}") for n in range(3)]
    with session_scope() as session:
        user = session.exec(select(User).where(User.email == "office@elm.example")).one()
        concerns.change_status(session, session.get(Concern, ids[0]), user, "closed", None)
    response = staff.get("/school/")
    assert "2 new concerns have not been picked up yet" in text_of(response)
    assert 'href="/school/concerns?status=new"' in response.get_data(as_text=True)


# --- The domain, without HTTP -----------------------------------------------------------------------


def test_recipients_are_the_concerns_address_and_active_staff_once_each(app, school, make_account) -> None:
    """Addresses differing only in case are one recipient; moderators are never among them."""
    make_account("office@elm.example", Role.STAFF, (), accept_notice=False)
    make_account("head@elm.example", Role.STAFF, (), accept_notice=False)
    make_account("rep@elm.example")
    with session_scope() as session:
        elm = schools.school_by_slug(session, "elm-primary")
        elm.concerns_email = "Office@Elm.example"
        assert concerns.recipients(session, elm) == ["Office@Elm.example", "head@elm.example"]


def test_references_read_the_same_everywhere() -> None:
    """A reference is C- and six digits."""
    assert concerns.reference(42) == "C-000042"
