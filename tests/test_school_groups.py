"""Staff manage their school's groups and appoint and stand down moderators."""

from __future__ import annotations

import re

import pytest
from sqlmodel import func, select

from membership.models import Group, GroupModerator, LedgerEntry, Role, User
from membership.moderation.members import fingerprint

from .conftest import PASSWORD, error_summary, link_in, outbox, sign_in, snapshot, text_of

GOOD = {
    "name": "Year 3 Oak", "description": "For parents and carers of Year 3 Oak.", "academic_year": "2026-27",
    "platform": "whatsapp", "chat_url": "https://chat.whatsapp.com/OakChat123", "requires_approval": "y",
}


def state(db) -> dict:
    """Everything a refused staff request must leave alone: the usual snapshot plus groups and moderators."""
    snap = snapshot(db)
    snap["groups"] = sorted(
        (g.slug, g.name, g.description, g.academic_year, g.platform, g.chat_url, g.requires_approval)
        for g in db.exec(select(Group))
    )
    snap["users"] = sorted((u.email, u.role, u.school_id) for u in db.exec(select(User)))
    snap["moderators"] = sorted(
        (m.group_id, m.user_id, m.stood_down_at is None) for m in db.exec(select(GroupModerator))
    )
    return snap


def entries(db, action: str) -> list[LedgerEntry]:
    """Ledger entries with this action, oldest first."""
    db.commit()
    return list(db.exec(select(LedgerEntry).where(LedgerEntry.action == action).order_by(LedgerEntry.seq)))


def staff_id(db) -> int:
    """The signed-in staff member's account id."""
    db.commit()
    return db.exec(select(User.id).where(User.email == "office@elm.example")).one()


@pytest.fixture
def appoint(staff):
    """Appoint a moderator of a group through the staff page; returns the response."""

    def run(email: str, name: str = "Robin Rep", slug: str = "year-2-ash"):
        return staff.submit(f"/school/groups/{slug}/moderators", {"email": email, "name": name})

    return run


# --- Groups -------------------------------------------------------------------------------------


def test_groups_page_lists_groups_with_their_moderators(staff, make_account) -> None:
    """Each group shows its join page, year, platform and current moderators; the nav marks the section."""
    make_account("rep@elm.example", groups=("year-2-ash",))
    response = staff.get("/school/groups")
    page = text_of(response)
    assert response.status_code == 200
    assert "Year 2 Ash" in page and "Year 4 Birch" in page
    assert "http://classgate.test/join/year-2-ash" in page
    assert "rep" in page and "None yet" in page  # Birch has no moderator
    assert 'aria-current="page" href="/school/groups"' in response.get_data(as_text=True)


def test_adding_a_group_makes_its_slug_from_the_name(staff, db, browser) -> None:
    """A new group gets a slug from its name, its details as typed, and a join page that works."""
    response = staff.submit("/school/groups/new", GOOD)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/school/groups/year-3-oak/moderators")
    db.commit()
    group = db.exec(select(Group).where(Group.slug == "year-3-oak")).one()
    assert (group.name, group.academic_year, group.platform, group.requires_approval) == (
        "Year 3 Oak", "2026-27", "whatsapp", True)
    assert group.chat_url == GOOD["chat_url"] and group.description == GOOD["description"]
    [entry] = entries(db, "chat_link_set")
    assert entry.group_id == group.id and entry.channel == "staff" and entry.actor == f"user:{staff_id(db)}"
    assert GOOD["chat_url"] not in entry.detail and fingerprint(GOOD["chat_url"]) in entry.detail
    assert browser.get("/join/year-3-oak").status_code == 200


def test_the_new_group_form_suggests_this_academic_year(staff) -> None:
    """The form starts with the current academic year and WhatsApp chosen."""
    from membership.schools import academic_year

    html = staff.get("/school/groups/new").get_data(as_text=True)
    assert f'value="{academic_year()}"' in html
    assert re.search(r'<input[^>]*checked[^>]*value="whatsapp"|<input[^>]*value="whatsapp"[^>]*checked', html)


def test_a_second_group_with_the_same_name_gets_its_own_slug(staff, db, other_school) -> None:
    """Slugs are unique across every school: the academic year, then a number, tells the groups apart."""
    for _ in range(2):
        assert staff.submit("/school/groups/new", {**GOOD, "name": "Year 2 Ash", "chat_url": ""}).status_code == 303
    assert staff.submit("/school/groups/new", {**GOOD, "name": "Year 1 Pine", "chat_url": ""}).status_code == 303
    db.commit()
    slugs = set(db.exec(select(Group.slug)).all())
    assert {"year-2-ash", "year-2-ash-2026-27", "year-2-ash-2026-27-2", "year-1-pine-2026-27"} <= slugs


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "Enter the group's name"),
        ({"name": "x" * 101}, "name", "100 characters or fewer"),
        ({"description": "x" * 501}, "description", "500 characters or fewer"),
        ({"academic_year": "2026-28"}, "academic_year", "like 2026-27"),
        ({"academic_year": "next year"}, "academic_year", "like 2026-27"),
        ({"platform": "myspace"}, "platform", "Choose where the group chat is"),
        ({"chat_url": "http://chat.whatsapp.com/OakChat123"}, "chat_url", "starts with https://"),
        ({"chat_url": "https://evil.example/OakChat123"}, "chat_url", "WhatsApp group invite link"),
        ({"chat_url": "https://chat.whatsapp.com@evil.example/x"}, "chat_url", "starts with https://"),
    ],
)
def test_a_wrong_group_form_is_refused_and_changes_nothing(staff, db, changes, field, message) -> None:
    """Each mistake is named at its field, in the error summary, and no group is added."""
    before = state(db)
    response = staff.submit("/school/groups/new", {**GOOD, **changes})
    assert response.status_code == 400
    assert any(target == f"#{field}" or target.startswith(f"#{field}-") for target, _ in error_summary(response))
    assert message in text_of(response)
    assert state(db) == before


def test_signal_groups_take_any_https_chat_link(staff, db) -> None:
    """Only WhatsApp links are checked for their host; other platforms need https."""
    data = {**GOOD, "name": "Year 5 Yew", "platform": "signal", "chat_url": "https://signal.group/#CjQKIA"}
    assert staff.submit("/school/groups/new", data).status_code == 303
    db.commit()
    assert db.exec(select(Group.platform).where(Group.slug == "year-5-yew")).one() == "signal"


def test_editing_a_group_keeps_its_slug(staff, db) -> None:
    """Staff change the name and settings; the slug printed on letters stays, and a new chat link is recorded."""
    form = staff.get("/school/groups/year-2-ash/edit")
    assert form.status_code == 200 and 'value="Year 2 Ash"' in form.get_data(as_text=True)
    new_link = "https://chat.whatsapp.com/NewAshChat9"
    data = {**GOOD, "name": "Year 3 Ash", "academic_year": "2027-28", "chat_url": new_link}
    response = staff.submit("/school/groups/year-2-ash/edit", data)
    assert response.status_code == 303
    db.commit()
    group = db.exec(select(Group).where(Group.slug == "year-2-ash")).one()
    assert (group.name, group.academic_year, group.chat_url, group.requires_approval) == (
        "Year 3 Ash", "2027-28", new_link, True)
    [entry] = entries(db, "chat_link_set")
    assert fingerprint(new_link) in entry.detail
    assert "Year 3 Ash has been updated" in text_of(staff.get("/school/groups"))


def test_saving_a_group_unchanged_writes_nothing(staff, db) -> None:
    """Submitting the edit form as it was filled in changes nothing and adds no ledger entry."""
    before = state(db)
    # The form as it arrives, filled in from the group.
    fields = staff.hidden_fields(staff.get("/school/groups/year-2-ash/edit").get_data(as_text=True))
    year = db.exec(select(Group.academic_year).where(Group.slug == "year-2-ash")).one()
    fields.update(name="Year 2 Ash", description="", academic_year=year, platform="whatsapp",
                  chat_url="https://chat.whatsapp.com/AshChat")
    assert staff.client.post("/school/groups/year-2-ash/edit", data=fields).status_code == 303
    assert state(db) == before
    assert "Nothing was changed" in text_of(staff.get("/school/groups"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"name": " "}, "Enter the group's name"), ({"chat_url": "javascript:alert(1)"}, "starts with https://")],
)
def test_a_wrong_edit_is_refused_and_changes_nothing(staff, db, changes, message) -> None:
    """A refused edit shows the mistake and leaves the group as it was."""
    before = state(db)
    response = staff.submit("/school/groups/year-2-ash/edit", {**GOOD, **changes})
    assert response.status_code == 400 and message in text_of(response)
    assert state(db) == before


# --- Moderators ---------------------------------------------------------------------------------


def test_appointing_someone_new_creates_an_account_they_can_use(appoint, db, make_browser) -> None:
    """A new moderator gets an account, a set-password email whose link works, and then sees their group."""
    response = appoint("new.rep@example.com", "Robin Rep")
    assert response.status_code == 303
    db.commit()
    user = db.exec(select(User).where(User.email == "new.rep@example.com")).one()
    assert (user.role, user.name, user.password_hash) == (Role.MODERATOR, "Robin Rep", None)
    [entry] = entries(db, "moderator_appoint")
    assert entry.actor == f"user:{staff_id(db)}" and entry.channel == "staff"
    assert f'"user_id":{user.id}' in entry.detail and '"new_account":true' in entry.detail

    [message] = outbox(db, to="new.rep@example.com", kind="set-password")
    phone = make_browser()
    password = "a new moderator's passphrase"
    saved = phone.submit(link_in(message), {"password": password, "confirm": password})
    assert saved.status_code == 200 and "Password saved" in text_of(saved)
    assert sign_in(phone, "new.rep@example.com", password).status_code == 303
    assert phone.submit("/moderate/notice", {"accept": "y"}).status_code == 303
    assert "Year 2 Ash" in text_of(phone.get("/moderate/"))
    assert phone.get("/moderate/year-2-ash/").status_code == 200
    assert phone.get("/moderate/year-4-birch/").status_code == 404


def test_appointing_an_existing_moderator_adds_the_group(appoint, make_account, db) -> None:
    """Someone already moderating here keeps their account and gets the group too, with an email saying so."""
    user_id = make_account("rep@elm.example", groups=("year-4-birch",))
    users_before = db.exec(select(func.count()).select_from(User)).one()
    assert appoint("REP@elm.example").status_code == 303
    db.commit()
    assert db.exec(select(func.count()).select_from(User)).one() == users_before
    groups = db.exec(select(GroupModerator.group_id).where(GroupModerator.user_id == user_id)).all()
    assert len(groups) == 2
    [message] = outbox(db, to="rep@elm.example", kind="moderator-appointed")
    assert "Year 2 Ash" in message.subject
    assert '"new_account":false' in entries(db, "moderator_appoint")[0].detail


@pytest.mark.parametrize(
    ("email", "name", "field", "message"),
    [
        ("office@elm.example", "Robin", "email", "This is a staff account"),
        ("office@pine.example", "Robin", "email", "already used by another Classgate account"),
        ("not-an-email", "Robin", "email", "correct format"),
        ("", "Robin", "email", "correct format"),
        ("robin@example.com", "", "name", "Enter the moderator's name"),
        ("robin@example.com", "x" * 81, "name", "80 characters or fewer"),
    ],
)
def test_appointing_is_refused_for_staff_other_schools_and_bad_input(
    appoint, db, other_school, email, name, field, message
) -> None:
    """Staff accounts, another school's accounts and bad input are refused with a message, changing nothing."""
    before = state(db)
    response = appoint(email, name)
    assert response.status_code == 400
    assert [target for target, _ in error_summary(response)] == [f"#{field}"]
    assert message in text_of(response)
    assert state(db) == before


def test_appointing_someone_twice_says_so(appoint, make_account, db, staff) -> None:
    """A current moderator of the group cannot be appointed again; nothing changes."""
    make_account("rep@elm.example", groups=("year-2-ash",))
    before = state(db)
    response = appoint("rep@elm.example")
    assert response.status_code == 303
    assert "already a moderator of Year 2 Ash" in text_of(staff.get(response.headers["Location"]))
    assert state(db) == before


def test_standing_down_ends_access_and_reappointing_restores_it(appoint, make_account, make_browser, staff, db):
    """A stood-down moderator gets 404 on the group and no longer sees it; they can be appointed again."""
    user_id = make_account("rep@elm.example", groups=("year-2-ash",))
    phone = make_browser()
    sign_in(phone, "rep@elm.example", PASSWORD)
    assert phone.get("/moderate/year-2-ash/").status_code == 200

    page = staff.get("/school/groups/year-2-ash/moderators")
    assert "rep@elm.example" in text_of(page)
    token = staff.hidden_fields(page.get_data(as_text=True))["csrf_token"]
    done = staff.client.post(f"/school/groups/year-2-ash/moderators/{user_id}/stand-down", data={"csrf_token": token})
    assert done.status_code == 303
    db.commit()
    link = db.exec(select(GroupModerator).where(GroupModerator.user_id == user_id)).one()
    assert link.stood_down_at is not None
    [entry] = entries(db, "moderator_stand_down")
    assert entry.actor == f"user:{staff_id(db)}" and entry.channel == "staff" and f'"user_id":{user_id}' in entry.detail

    assert phone.get("/moderate/year-2-ash/").status_code == 404
    assert phone.get("/moderate/year-2-ash/members").status_code == 404
    assert "Year 2 Ash" not in text_of(phone.get("/moderate/"))
    assert "rep@elm.example" not in text_of(staff.get("/school/groups/year-2-ash/moderators"))

    # Standing down twice says so and writes nothing more.
    again = staff.client.post(f"/school/groups/year-2-ash/moderators/{user_id}/stand-down", data={"csrf_token": token})
    assert again.status_code == 303 and len(entries(db, "moderator_stand_down")) == 1

    assert appoint("rep@elm.example").status_code == 303
    db.commit()
    db.refresh(link)
    assert link.stood_down_at is None
    assert phone.get("/moderate/year-2-ash/").status_code == 200


def test_standing_down_someone_who_is_not_a_moderator_here_is_404(staff, db, make_account) -> None:
    """The staff member's own account, or a moderator of another group, cannot be stood down from this one."""
    rep = make_account("rep@elm.example", groups=("year-4-birch",))
    token = staff.hidden_fields(staff.get("/school/groups/new").get_data(as_text=True))["csrf_token"]
    before = state(db)
    response = staff.client.post(f"/school/groups/year-2-ash/moderators/{rep}/stand-down", data={"csrf_token": token})
    assert response.status_code == 303
    assert "is not a moderator of Year 2 Ash" in text_of(staff.get(response.headers["Location"]))
    assert state(db) == before


# --- Security -----------------------------------------------------------------------------------


def test_every_post_needs_the_csrf_token(staff, make_account, db) -> None:
    """Without the page's CSRF token each form is refused and nothing changes."""
    rep = make_account("rep@elm.example", groups=("year-2-ash",))
    before = state(db)
    posts = {
        "/school/groups/new": GOOD,
        "/school/groups/year-2-ash/edit": GOOD,
        "/school/groups/year-2-ash/moderators": {"email": "x@example.com", "name": "X"},
        f"/school/groups/year-2-ash/moderators/{rep}/stand-down": {},
    }
    for url, data in posts.items():
        response = staff.client.post(url, data=data)
        assert response.status_code == 400, url
    assert state(db) == before


def test_moderators_get_404_on_every_group_page(moderator, db) -> None:
    """The staff group pages are not there for a moderator, whatever the method, even with a valid CSRF token."""
    token = moderator.hidden_fields(moderator.get("/moderate/").get_data(as_text=True))["csrf_token"]
    rep = db.exec(select(User.id).where(User.email == "rep@elm.example")).one()
    before = state(db)
    for url in ("/school/groups", "/school/groups/new", "/school/groups/year-2-ash/edit",
                "/school/groups/year-2-ash/moderators"):
        assert moderator.get(url).status_code == 404, url
        assert moderator.client.post(url, data={**GOOD, "csrf_token": token}).status_code in (404, 405), url
    url = f"/school/groups/year-2-ash/moderators/{rep}/stand-down"
    assert moderator.client.post(url, data={"csrf_token": token}).status_code == 404
    assert state(db) == before
