"""A signed-in parent's groups: what they agreed to, what is waiting, agreeing again and leaving."""

from __future__ import annotations

import pytest
from sqlmodel import select

from membership import policies, schools
from membership.db import session_scope
from membership.models import DocumentKind, Invite, LedgerEntry, Membership, Person, Status

from .conftest import Browser, counting_statements, csrf_token, error_summary, link_in, outbox, text_of
from .test_me import EMAIL, join, sign_in

OTHER = {"name": "Robin Other", "email": "robin@example.com", "mobile": "07400 123456"}


def publish_material(kind: DocumentKind = DocumentKind.CODE_OF_CONDUCT, note: str = "New rule about photos.") -> int:
    """Publish a material new version of a document at Elm Primary; returns its number."""
    with session_scope() as session:
        school = schools.school_by_slug(session, "elm-primary")
        return policies.publish(
            session, school.id, kind, policies.default_text(kind) + "\nNo photos of other people's children.\n",
            material=True, change_note=note,
        ).number


def entries(db, membership_id: int) -> list[LedgerEntry]:
    """A membership's ledger entries, oldest first."""
    db.commit()
    return list(db.exec(
        select(LedgerEntry).where(LedgerEntry.membership_id == membership_id).order_by(LedgerEntry.seq)
    ).all())


@pytest.fixture
def two_groups(make_browser, make_code, db):
    """Sam in Year 2 Ash (link sent) and Year 4 Birch (waiting for a moderator), then signed in."""
    phone = make_browser()
    ash = join(phone, db, make_code("year-2-ash", "Amelia R."))
    birch = join(phone, db, make_code("year-4-birch", "Ben T."), slug="year-4-birch", relationship="carer")
    sign_in(phone, db)
    return phone, ash, birch


def test_my_groups_lists_every_membership_with_its_agreements(two_groups, db):
    """Both groups, each with the child, where it stands, and each agreement's document, version and statement."""
    phone, ash, birch = two_groups
    page = text_of(phone.get("/me/"))
    assert "Your class groups" in page
    for group, child, status in (("Year 2 Ash", "Amelia R.", "Link to the group sent"),
                                 ("Year 4 Birch", "Ben T.", "Waiting for a moderator")):
        assert group in page and child in page and status in page
    assert "You are their parent" in page and "You are their carer or guardian" in page
    assert page.count("Class Group Code of Conduct, version 1") == 2
    assert page.count("Data notice, version 1") == 2
    assert page.count("I agree to follow the Class Group Code of Conduct (version 1") == 2
    assert page.count("I have read the data notice (version 1") == 2
    assert "You agreed on" in page and "You confirmed you had read it on" in page
    assert "Elm Primary School" in page
    assert "A moderator (a class rep) needs to look at your request" in page
    invite = db.exec(select(Invite).where(Invite.membership_id == ash.id)).one()
    assert "It works once, until" in page
    assert str(invite.expires_at.day) in page
    assert "Download your data" in page and "Erase your details" in page


def test_my_groups_include_every_person_record_and_school(make_browser, make_code, db, other_school):
    """A parent who joined at two schools (two person records) sees both, and nothing of anyone else."""
    phone = make_browser()
    join(phone, db, make_code())
    with session_scope() as session:
        from membership import journey as steps
        from membership.models import Verification

        pine = schools.group_by_slug(session, other_school["slug"])
        steps.start(session, pine, steps.Proof(Verification.NONE, claimed_child_name="Poppy P."),
                    name="Sam Parent", relationship="parent", email=EMAIL, mobile=None)
    sign_in(phone, db)
    page = text_of(phone.get("/me/"))
    assert "Year 2 Ash" in page and "Year 1 Pine" in page and "Pine Primary School" in page
    assert "Poppy P." in page
    assert "Email address not confirmed yet" in page
    assert "Pip P." not in page and "Pine Parent" not in page


def test_my_groups_take_the_same_number_of_statements_however_many_groups(make_browser, make_code, db, app):
    """The page joins rather than querying once per membership."""

    def statements_for_page(phone: Browser) -> int:
        with counting_statements(app) as statements:
            assert phone.get("/me/").status_code == 200
        return len(statements)

    phone = make_browser()
    join(phone, db, make_code("year-2-ash", "Amelia R."))
    sign_in(phone, db)
    one = statements_for_page(phone)
    with session_scope() as session:
        school = schools.school_by_slug(session, "elm-primary")
        schools.create_group(session, school, "year-5-cedar", "Year 5 Cedar", chat_url="https://chat.whatsapp.com/Cedar")
    join(phone, db, make_code("year-4-birch", "Ben T."), slug="year-4-birch")
    join(phone, db, make_code("year-5-cedar", "Cara D."), slug="year-5-cedar")
    assert statements_for_page(phone) == one
    assert text_of(phone.last).count("Class Group Code of Conduct, version 1") == 3


def test_another_parents_membership_is_not_found(two_groups, make_browser, make_code, db):
    """A membership id that is not the signed-in parent's answers 404 on every page, and changes nothing."""
    phone, _, _ = two_groups
    theirs = join(make_browser(), db, make_code("year-2-ash", "Dan E."), **OTHER)
    csrf = csrf_token(phone, "/me/")
    for url in (f"/me/groups/{theirs.id}/leave", f"/me/groups/{theirs.id}/reagree", "/me/groups/999999/leave"):
        assert phone.get(url).status_code == 404, url
        assert phone.client.post(url, data={"csrf_token": csrf, "agree_coc": "y"}).status_code == 404, url
    db.commit()
    assert db.get(Membership, theirs.id).status == Status.INVITED
    page = text_of(phone.get("/me/"))
    assert "Robin Other" not in page and "Dan E." not in page


# --- Agreeing again ---------------------------------------------------------------------------


def test_reagree_after_a_material_change_records_both_statements_from_me(two_groups, db):
    """After a material version, My groups asks them to agree again; agreeing writes two entries from 'me'."""
    phone, ash, _ = two_groups
    publish_material()
    page = text_of(phone.get("/me/"))
    assert page.count("The school has changed the group’s documents") == 1  # Birch is not in the group yet
    assert f"/me/groups/{ash.id}/reagree" in phone.last.get_data(as_text=True)

    form_page = phone.get(f"/me/groups/{ash.id}/reagree")
    text = text_of(form_page)
    assert form_page.status_code == 200
    assert "Class Group Code of Conduct version 2" in text and "Data notice version 1" in text
    assert "No photos of other people's children" in text
    assert "What changed: Class Group Code of Conduct, version 2: New rule about photos." in text
    assert 'type="checkbox"' in form_page.get_data(as_text=True) and "checked" not in form_page.get_data(as_text=True)

    before = len(entries(db, ash.id))
    response = phone.submit(f"/me/groups/{ash.id}/reagree", {"agree_coc": "y", "acknowledge_notice": "y"})
    assert response.status_code == 303
    new = entries(db, ash.id)[before:]
    assert [(e.action, e.document_version, e.channel) for e in new] == [("agree", 2, "me"), ("acknowledge", 1, "me")]
    assert new[0].statement.startswith("I agree to follow the Class Group Code of Conduct (version 2")
    assert db.get(Membership, ash.id).needs_reagree is False
    page = text_of(phone.get("/me/"))
    assert "You have agreed to the current documents for Year 2 Ash" in page
    assert "The school has changed the group’s documents" not in page
    assert "Class Group Code of Conduct, version 2" in page and "after it changed" in page

    again = phone.get(f"/me/groups/{ash.id}/reagree")
    assert again.status_code == 303
    assert "already agreed" in text_of(phone.get("/me/"))


def test_reagree_needs_both_boxes_ticked(two_groups, db):
    """Unticked boxes get the error summary and record nothing."""
    phone, ash, _ = two_groups
    publish_material()
    before = len(entries(db, ash.id))
    response = phone.submit(f"/me/groups/{ash.id}/reagree", {"agree_coc": "y"})
    assert response.status_code == 400
    assert error_summary(response) == [
        ("#acknowledge_notice", "Tick the box to confirm you have read the data notice")
    ]
    assert len(entries(db, ash.id)) == before


def test_reagree_to_versions_replaced_while_reading_asks_to_read_again(two_groups, db):
    """A version published while the page was open is never agreed to unseen."""
    phone, ash, _ = two_groups
    publish_material()
    hidden = Browser.hidden_fields(phone.get(f"/me/groups/{ash.id}/reagree").get_data(as_text=True))
    publish_material(note="Another change.")
    before = len(entries(db, ash.id))
    response = phone.client.post(f"/me/groups/{ash.id}/reagree",
                                 data={**hidden, "agree_coc": "y", "acknowledge_notice": "y"})
    assert response.status_code == 303
    assert "were updated while you were reading" in text_of(phone.get(response.headers["Location"]))
    assert len(entries(db, ash.id)) == before


# --- Leaving ----------------------------------------------------------------------------------


def test_the_leave_page_explains_before_anything_happens(two_groups, db):
    """GET only asks; it says what leaving does and that it is never held against them."""
    phone, ash, _ = two_groups
    page = phone.get(f"/me/groups/{ash.id}/leave")
    text = text_of(page)
    assert page.status_code == 200
    assert "Leave Year 2 Ash?" in text
    assert "stops working" in text and "take you out of it" in text
    assert "never held against you or your child" in text and "join again later" in text
    db.commit()
    assert db.get(Membership, ash.id).status == Status.INVITED


def test_leaving_ends_the_membership_and_revokes_open_links(two_groups, db, make_moderator):
    """Leave: status left, the unused invite revoked, a withdraw entry, a confirmation email; no chat task."""
    make_moderator("rep@elm.example", "year-2-ash")
    phone, ash, birch = two_groups
    response = phone.submit(f"/me/groups/{ash.id}/leave")
    assert response.status_code == 303 and response.headers["Location"].endswith("/me/")
    page = text_of(phone.get("/me/"))
    assert "You have left Year 2 Ash" in page
    assert "Groups you are no longer in" in page
    db.commit()
    left = db.get(Membership, ash.id)
    assert left.status == Status.LEFT and left.end_reason == "left"
    assert left.chat_removal_due_at is None  # never used the link, so never in the chat
    assert all(i.revoked_at is not None for i in db.exec(select(Invite).where(Invite.membership_id == ash.id)))
    actions = [(e.action, e.channel) for e in entries(db, ash.id)]
    assert ("withdraw", "me") in actions and ("invite_revoke", "me") in actions
    assert len(outbox(db, to=EMAIL, kind="left")) == 1
    assert outbox(db, to="rep@elm.example", kind="chat-removal") == []
    assert db.get(Membership, birch.id).status == Status.PENDING_APPROVAL
    assert phone.get(f"/me/groups/{ash.id}/leave").status_code == 303  # nothing left to leave


def test_leaving_after_using_the_link_asks_the_moderator_to_remove_them(make_browser, make_code, db, make_moderator):
    """Someone who opened the group is put on the moderators' removal list, and the moderator is emailed."""
    make_moderator("rep@elm.example", "year-2-ash")
    phone = make_browser()
    membership = join(phone, db, make_code())
    invite_link = link_in(outbox(db, to=EMAIL, kind="invite")[-1])
    assert phone.submit(invite_link).status_code == 303
    sign_in(phone, db)
    assert phone.submit(f"/me/groups/{membership.id}/leave").status_code == 303
    db.commit()
    left = db.get(Membership, membership.id)
    assert left.status == Status.LEFT and left.chat_removal_due_at is not None
    removal = outbox(db, to="rep@elm.example", kind="chat-removal")
    assert len(removal) == 1 and "Sam Parent" in removal[0].body_text


def test_after_leaving_they_can_join_again_with_the_same_code(make_browser, make_code, db):
    """Leaving gives the code's place back: the same one-carer code works again."""
    code = make_code(uses_allowed=1)
    phone = make_browser()
    first = join(phone, db, code)
    sign_in(phone, db)
    phone.submit(f"/me/groups/{first.id}/leave")
    again = join(make_browser(), db, code)
    assert again.id != first.id and again.status == Status.INVITED
    page = text_of(phone.get("/me/"))
    assert "Link to the group sent" in page and "You left" in page
    assert db.exec(select(Person).where(Person.email == EMAIL)).all()[0].erased_at is None


def test_every_status_has_plain_words_for_parents():
    """No membership is ever shown to a parent by its internal name."""
    from membership.parents import STATUS_WORDS

    assert set(STATUS_WORDS) == set(Status)
    assert all(words and "_" not in words for words in STATUS_WORDS.values())
