"""A moderator's members: the match list, seen in the chat, removal and its rejoin block, invites, the chat link."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from membership import invites, ledger, policies, schools
from membership.db import session_scope
from membership.models import (
    DocumentKind,
    Group,
    GroupBlock,
    Invite,
    LedgerEntry,
    Membership,
    Person,
    Status,
    User,
    Verification,
    utcnow,
)
from membership.moderation import members as operations
from membership.validation import Invalid

from .conftest import Browser, counting_statements, error_summary, link_in, outbox, sign_in, snapshot, text_of

ASH = "year-2-ash"
ASH_CHAT = "https://chat.whatsapp.com/AshChat"
NEW_CHAT = "https://chat.whatsapp.com/FreshAshInvite2026"
SAM = {"name": "Sam Parent", "email": "sam@example.com", "mobile": "07911 123456"}
MEMBERS = f"/moderate/{ASH}/members"


# --- Fixtures and helpers -----------------------------------------------------------------------


@dataclass
class Joined:
    """A parent who went through the journey: their membership, the code they used and their invite link."""

    membership_id: int
    code: str
    invite_url: str


def join(phone: Browser, db: Session, code: str, *, redeem: bool = True, **details: str) -> Joined:
    """Take a parent through Year 2 Ash (an open group) with a code; optionally open the group."""
    person = {**SAM, **details}
    assert phone.submit(f"/join/{ASH}", {"code": code}).status_code == 303
    given = phone.submit(f"/join/{ASH}/details", {**person, "relationship": "parent"})
    assert given.status_code == 302, text_of(given)
    phone.get(link_in(outbox(db, to=person["email"], kind="verify-email")[-1]))
    agreed = phone.submit(f"/join/{ASH}/agree", {"agree_coc": "y", "acknowledge_notice": "y"})
    assert agreed.status_code == 303, text_of(agreed)
    invite_url = agreed.headers["Location"]
    if redeem:
        assert phone.submit(invite_url).status_code == 303
    db.commit()
    membership_id = db.exec(
        select(Membership.id).join(Person, Person.id == Membership.person_id)
        .where(Person.email == person["email"]).order_by(Membership.id.desc())
    ).first()
    return Joined(membership_id, code, invite_url)


@pytest.fixture
def rep_id(moderator, db) -> int:
    """The id of the signed-in `moderator` (Year 2 Ash)."""
    db.commit()
    return db.exec(select(User.id).where(User.email == "rep@elm.example")).one()


@pytest.fixture
def sam(browser, db, make_code) -> Joined:
    """Sam, who joined Year 2 Ash and used their link: the moderator expects their join request."""
    return join(browser, db, make_code())


@pytest.fixture
def sam_invited(browser, db, make_code) -> Joined:
    """Sam, who agreed and was sent a link they have not used yet."""
    return join(browser, db, make_code(), redeem=False)


def fresh(db: Session, model, row_id: int):
    """A row as the database has it now."""
    db.commit()
    return db.get(model, row_id, populate_existing=True)


def entries(db: Session, action: str) -> list[LedgerEntry]:
    """Ledger entries with one action, oldest first."""
    db.commit()
    return list(db.exec(select(LedgerEntry).where(LedgerEntry.action == action).order_by(LedgerEntry.seq)))


def chain_intact(db: Session) -> bool:
    """The school's hash chain still verifies."""
    db.commit()
    return all(ledger.verify(db, school_id).ok for school_id in db.exec(select(Group.school_id)).all())


def token_of(phone: Browser) -> str:
    """A CSRF token for a signed-in moderator's session."""
    return phone.hidden_fields(phone.get("/moderate/").get_data(as_text=True))["csrf_token"]


def post(phone: Browser, url: str, data: dict | None = None):
    """POST with the moderator's CSRF token, as the buttons on the members page do."""
    phone.last = phone.client.post(url, data={"csrf_token": token_of(phone), **(data or {})})
    return phone.last


def state(db: Session, group_slug: str = ASH) -> dict:
    """What a moderator's request could change: the parent-side snapshot plus the group's link and blocks."""
    result = snapshot(db)
    group = db.exec(select(Group).where(Group.slug == group_slug)).one()
    result["chat_url"] = group.chat_url
    result["blocks"] = sorted((b.id, b.lifted_at is None) for b in db.exec(select(GroupBlock)))
    result["members"] = sorted(
        (m.id, m.seen_in_chat_at is None, m.end_reason, m.end_note) for m in db.exec(select(Membership))
    )
    return result


def user(session: Session, user_id: int) -> User:
    """A moderator's account in this session."""
    return session.get(User, user_id)


@pytest.fixture
def add_members(app, school) -> Callable[[int, int], None]:
    """A factory adding members straight through the domain (fast enough for 30): a mix of link states."""

    def add(count: int, start: int = 0) -> None:
        """Add `count` members numbered from `start`: every third used their link, every sixth is seen."""
        with session_scope() as session:
            group = schools.group_by_slug(session, ASH)
            coc = policies.current(session, group.school_id, DocumentKind.CODE_OF_CONDUCT)
            notice = policies.current(session, group.school_id, DocumentKind.DATA_NOTICE)
            for number in range(start, start + count):
                child = schools.add_child(session, group, "Amelia R.").child
                person = Person(name=f"Parent {number:02d}", email=f"p{number}@example.com",
                                mobile=f"+4479111234{number:02d}")
                session.add(person)
                session.flush()
                membership = Membership(
                    group_id=group.id, person_id=person.id, child_id=child.id, relationship="parent",
                    status=Status.APPROVED, verified_by=Verification.CODE, coc_version_id=coc.id,
                    notice_version_id=notice.id, agreed_at=utcnow(), approved_at=utcnow(),
                )
                session.add(membership)
                session.flush()
                token = invites.issue(session, membership, actor="system", channel="test")
                if number % 3 == 0:
                    invites.redeem(session, token)
                if number % 6 == 0:
                    membership.seen_in_chat_at = utcnow()
                    session.add(membership)

    return add


# --- The match list -------------------------------------------------------------------------------


def test_members_page_shows_what_the_moderator_matches_chat_requests_against(moderator, sam, db):
    """Name, child, mobile, how verified, versions agreed, link state and 'expect a join request'."""
    page = moderator.get(MEMBERS)
    assert page.status_code == 200
    body = text_of(page)
    assert "Sam Parent" in body and "Amelia R. (parent)" in body
    assert "+44 7911 123456" in body
    assert "Link used – expect a join request from Sam Parent, +44…456" in body
    assert "Code from the school letter" in body
    assert "Code of conduct v1, data notice v1" in body and "Must re-agree" not in body
    assert "Link Used" in body and "Seen in the chat Not yet" in body
    assert "Members (1)" in body and 'aria-current="page"' in page.get_data(as_text=True)
    # The chat link itself is never on the list.
    assert "AshChat" not in page.get_data(as_text=True)


def test_member_rows_read_each_invite_state(app, add_members, db):
    """The newest invite decides the state: open, used, expired, revoked, or none sent."""
    add_members(5)
    with session_scope() as session:
        group = schools.group_by_slug(session, ASH)
        by_name = {row.person.name: row.membership for row in operations.members(session, group)}
        # Parent 00 and 03 used their links; make 01 expired, 02 revoked, 04 approved with none sent.
        session.exec(update(Invite).where(Invite.membership_id == by_name["Parent 01"].id)
                     .values(expires_at=utcnow() - timedelta(minutes=1)))
        invites.revoke(session, by_name["Parent 02"], actor="system", channel="test")
        session.exec(update(Invite).where(Invite.membership_id == by_name["Parent 04"].id)
                     .values(membership_id=by_name["Parent 03"].id))
    with session_scope() as session:
        group = schools.group_by_slug(session, ASH)
        rows = {row.person.name: row for row in operations.members(session, group)}
    assert {name: row.invite_state for name, row in rows.items()} == {
        "Parent 00": "used", "Parent 01": "expired", "Parent 02": "revoked", "Parent 03": "open", "Parent 04": "none",
    }
    # Parent 03's newest invite is open, but the time their earlier one was used still shows.
    assert rows["Parent 03"].link_used_at is not None and rows["Parent 01"].link_used_at is None
    assert rows["Parent 00"].awaiting_chat is False  # seen in the chat already (every sixth)
    assert rows["Parent 03"].awaiting_chat is True


@pytest.mark.parametrize(("material", "must_reagree"), [(True, True), (False, False)])
def test_a_material_new_code_of_conduct_marks_everyone_to_re_agree(moderator, sam, db, material, must_reagree):
    """A material version puts every member on 'must re-agree'; a minor one does not."""
    with session_scope() as session:
        school = schools.school_by_slug(session, "elm-primary")
        policies.publish(session, school.id, DocumentKind.CODE_OF_CONDUCT, "New rules.", material=material)
    body = text_of(moderator.get(MEMBERS))
    assert ("Must re-agree" in body) is must_reagree
    assert "Current versions: code of conduct v2, data notice v1" in body


def count_statements(app, action: Callable[[], object]) -> int:
    """How many SQL statements the app's engine runs while doing something."""
    with counting_statements(app) as statements:
        action()
    return len(statements)


def test_members_page_runs_the_same_number_of_statements_for_3_and_30_members(app, moderator, add_members, db):
    """No query per member: the list costs the same for a class of 3 as for 30."""
    add_members(3)
    moderator.get(MEMBERS)  # warm up: pool connection, first-use lookups
    small = count_statements(app, lambda: moderator.get(MEMBERS))
    add_members(27, start=3)
    large_page = []
    large = count_statements(app, lambda: large_page.append(moderator.get(MEMBERS)))
    assert text_of(large_page[0]).count("Checked by") == 30
    assert small == large, f"{small} statements for 3 members, {large} for 30"
    assert large <= 10


# --- Seen in the chat -------------------------------------------------------------------------------


def test_ticking_seen_in_the_chat_and_untick(moderator, sam, rep_id, db):
    """The tick records when the join request arrived, with a ledger entry each way."""
    url = f"{MEMBERS}/{sam.membership_id}/seen"
    ticked = post(moderator, url, {"seen": "yes"})
    assert ticked.status_code == 303 and ticked.headers["Location"].endswith(MEMBERS)
    assert fresh(db, Membership, sam.membership_id).seen_in_chat_at is not None
    body = text_of(moderator.get(MEMBERS))
    assert "Sam Parent is marked as seen in the chat" in body and "expect a join request" not in body

    assert post(moderator, url, {"seen": "no"}).status_code == 303
    assert fresh(db, Membership, sam.membership_id).seen_in_chat_at is None
    seen = entries(db, "seen_in_chat")
    assert [json.loads(e.detail) for e in seen] == [{"seen": True}, {"seen": False}]
    assert {(e.actor, e.channel, e.membership_id) for e in seen} == {(f"user:{rep_id}", "moderator", sam.membership_id)}
    assert chain_intact(db)


def test_seen_in_the_chat_waits_for_the_link_to_be_used(moderator, sam_invited, rep_id, db):
    """A member who has not opened their link cannot be ticked: refused, and nothing changes."""
    before = state(db)
    with session_scope() as session, pytest.raises(operations.Refused):
        operations.mark_seen(session, session.get(Membership, sam_invited.membership_id), user(session, rep_id))
    response = post(moderator, f"{MEMBERS}/{sam_invited.membership_id}/seen", {"seen": "yes"})
    assert response.status_code == 303
    assert "Only a member who has used their link" in text_of(moderator.get(MEMBERS))
    assert state(db) == before


def test_ticking_twice_changes_nothing_the_second_time(app, sam, rep_id, db):
    """A second tick (two moderators at once) writes no second ledger entry."""
    with session_scope() as session:
        assert operations.mark_seen(session, session.get(Membership, sam.membership_id), user(session, rep_id))
    with session_scope() as session:
        assert not operations.mark_seen(session, session.get(Membership, sam.membership_id), user(session, rep_id))
    assert len(entries(db, "seen_in_chat")) == 1


# --- Removal -------------------------------------------------------------------------------------------


def remove(phone: Browser, membership_id: int, reason: str = "abuse", note: str = "Insults on 3 March."):
    """Remove a member through the page, as a moderator would."""
    return phone.submit(f"{MEMBERS}/{membership_id}/remove", {"reason": reason, "note": note})


def test_removing_a_member_records_blocks_emails_and_shows_the_checklist(moderator, sam, rep_id, db):
    """Status, reason and note, a block, a ledger entry without the note, a neutral email, then the checklist."""
    page = moderator.get(f"{MEMBERS}/{sam.membership_id}/remove")
    assert page.status_code == 200
    for label in operations.REMOVAL_REASONS.values():
        assert label in text_of(page)

    response = remove(moderator, sam.membership_id, "abuse", "Swore at another parent on 3 March.")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{MEMBERS}/{sam.membership_id}/removed")

    membership = fresh(db, Membership, sam.membership_id)
    assert membership.status == Status.REMOVED and membership.ended_at is not None
    assert (membership.end_reason, membership.end_note) == ("abuse", "Swore at another parent on 3 March.")
    block = db.exec(select(GroupBlock)).one()
    assert (block.email, block.mobile, block.reason) == ("sam@example.com", "+447911123456", "abuse")
    assert (block.membership_id, block.created_by_user_id, block.lifted_at) == (sam.membership_id, rep_id, None)

    removal = entries(db, "remove")[-1]
    assert json.loads(removal.detail) == {"reason": "abuse", "blocked": True}
    assert (removal.actor, removal.channel, removal.membership_id) == (f"user:{rep_id}", "moderator", sam.membership_id)
    everything = " ".join(f"{e.detail} {e.statement}" for e in db.exec(select(LedgerEntry)))
    assert "Swore" not in everything  # the note is personal data; the ledger can never be erased

    [email] = outbox(db, to="sam@example.com", kind="removed")
    assert "has ended" in email.subject
    assert "contact the Elm Primary School office" in email.body_text
    for accusation in ("abus", "Swore", "insult", "breach", "broke"):
        assert accusation.lower() not in email.body_text.lower()

    checklist = text_of(moderator.get(response.headers["Location"]))
    assert "Now remove Sam Parent, +44…456 from the WhatsApp group" in checklist
    assert "+44 7911 123456" in checklist
    assert "Abusive or threatening messages".lower() in checklist.lower()
    members_page = text_of(moderator.get(MEMBERS))
    assert "Members (0)" in members_page and "Left or removed (1)" in members_page
    with session_scope() as session:
        group = schools.group_by_slug(session, ASH)
        assert operations.members(session, group) == []
        assert [row.membership.id for row in operations.members(session, group, ended=True)] == [sam.membership_id]
    assert chain_intact(db)


def test_removal_cancels_an_unused_link(moderator, sam_invited, browser, rep_id, db):
    """The parent's open invite now says 'cancelled' (410), and pressing it does not open the chat."""
    assert browser.get(sam_invited.invite_url).status_code == 200
    assert remove(moderator, sam_invited.membership_id).status_code == 303

    page = browser.get(sam_invited.invite_url)
    assert page.status_code == 410 and "This link has been cancelled" in text_of(page)
    token = Browser.hidden_fields(browser.get("/join/year-2-ash").get_data(as_text=True))["csrf_token"]
    pressed = browser.client.post(Browser.path(sam_invited.invite_url), data={"csrf_token": token})
    assert pressed.status_code == 410 and "Location" not in pressed.headers
    revoked = entries(db, "invite_revoke")[-1]
    assert (revoked.actor, revoked.membership_id) == (f"user:{rep_id}", sam_invited.membership_id)
    db.commit()
    assert all(i.revoked_at is not None for i in db.exec(select(Invite)))


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "#reason-0", "Select which part of the code of conduct was broken"),
        ({"reason": "not-a-rule"}, "#reason-0", "Select which part of the code of conduct was broken"),
        ({"reason": "other", "note": "   "}, "#note", "Enter a note saying what happened"),
        ({"reason": "abuse", "note": "x" * 501}, "#note", "The note must be 500 characters or fewer"),
        ({"reason": "abuse", "note": "bad\x00byte"}, "#note", "The note must only include ordinary text"),
    ],
)
def test_a_removal_needs_a_rule_and_a_note_for_other(moderator, sam, db, data, field, message):
    """Missing or unknown reasons and bad notes are refused with a message by the field; nothing changes."""
    before = state(db)
    response = moderator.submit(f"{MEMBERS}/{sam.membership_id}/remove", data)
    assert response.status_code == 400
    [(target, text)] = error_summary(response)
    assert target == field and text.startswith(message)
    assert state(db) == before


def test_other_with_a_note_and_a_500_character_note_are_accepted(moderator, sam, db):
    """'Other' is fine once it has a note, up to the full 500 characters."""
    assert remove(moderator, sam.membership_id, "other", "y" * 500).status_code == 303
    assert fresh(db, Membership, sam.membership_id).end_reason == "other"


def test_a_removed_member_cannot_be_removed_again(app, moderator, sam, rep_id, db):
    """The domain refuses; the page sends the moderator to the checklist instead; nothing changes."""
    assert remove(moderator, sam.membership_id).status_code == 303
    before = state(db)
    with session_scope() as session, pytest.raises(operations.Refused):
        operations.remove(session, session.get(Membership, sam.membership_id), user(session, rep_id), "abuse", "")
    again = moderator.client.post(f"{MEMBERS}/{sam.membership_id}/remove",
                                  data={"csrf_token": token_of(moderator), "reason": "abuse"})
    assert again.status_code == 303 and again.headers["Location"].endswith("/removed")
    assert state(db) == before


# --- The rejoin block -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("same_code", "email", "mobile"),
    [
        (True, "sam@example.com", ""),  # the same code, the same email
        (False, "sam@example.com", ""),  # another child's code, the same email
        (False, "sam.other@example.com", "+44 7911 123456"),  # another email, the same mobile
        (True, "SAM@Example.com", "07911123456"),  # the same person, typed differently
    ],
)
def test_a_removed_parent_cannot_rejoin(moderator, sam, make_browser, make_code, db, same_code, email, mobile):
    """Whatever code they come back with, the blocked page answers, and nothing is stored or taken."""
    assert remove(moderator, sam.membership_id).status_code == 303
    phone = make_browser()
    code = sam.code if same_code else make_code(name="Ben T.")
    assert phone.submit(f"/join/{ASH}", {"code": code}).status_code == 303
    before = state(db)
    response = phone.submit(
        f"/join/{ASH}/details", {"name": "Sam Parent", "relationship": "parent", "email": email, "mobile": mobile}
    )
    assert response.status_code == 403
    body = text_of(response)
    assert "You cannot rejoin this group" in body and "contact the Elm Primary School office" in body
    assert state(db) == before  # no person, membership, code use, ledger entry or email


def test_someone_else_with_the_other_use_of_the_code_still_joins(moderator, sam, make_browser, db):
    """The block is on the removed person, not the child: the other carer joins with the same code."""
    assert remove(moderator, sam.membership_id).status_code == 303
    other = join(make_browser(), db, sam.code, name="Alex Carer", email="alex@example.com", mobile="07400 123456")
    assert fresh(db, Membership, other.membership_id).status == Status.LINK_USED


def test_a_lifted_block_lets_them_back(moderator, sam, make_browser, db):
    """Once the school lifts a block, the same person can start again."""
    assert remove(moderator, sam.membership_id).status_code == 303
    with session_scope() as session:
        session.exec(update(GroupBlock).values(lifted_at=utcnow()))
    back = join(make_browser(), db, sam.code, redeem=False)
    assert back.membership_id != sam.membership_id


# --- Invites --------------------------------------------------------------------------------------------


def test_a_new_link_kills_the_old_one_and_works(moderator, sam_invited, browser, make_browser, rep_id, db):
    """Re-issuing cancels the unused link (410), emails a new one, and the new one opens the group."""
    response = post(moderator, f"{MEMBERS}/{sam_invited.membership_id}/reissue")
    assert response.status_code == 303
    assert "A new link has been emailed to Sam Parent" in text_of(moderator.get(MEMBERS))

    assert browser.get(sam_invited.invite_url).status_code == 410
    invite_emails = outbox(db, to="sam@example.com", kind="invite")
    assert len(invite_emails) == 2
    assert "sent you a new link" in invite_emails[-1].body_text
    new_url = link_in(invite_emails[-1])
    assert new_url != sam_invited.invite_url
    opened = make_browser().submit(new_url)
    assert opened.status_code == 303 and opened.headers["Location"] == ASH_CHAT

    revoke_entry, issue_entry = entries(db, "invite_revoke")[-1], entries(db, "invite_issue")[-1]
    assert (revoke_entry.actor, revoke_entry.channel) == (f"user:{rep_id}", "moderator")
    assert (issue_entry.actor, issue_entry.channel) == (f"user:{rep_id}", "moderator")
    assert chain_intact(db)


def test_a_member_who_used_their_link_can_be_sent_another(moderator, sam, rep_id, db):
    """After 'I used it but the chat never opened', a new link is sent and 'seen' starts over."""
    post(moderator, f"{MEMBERS}/{sam.membership_id}/seen", {"seen": "yes"})
    assert post(moderator, f"{MEMBERS}/{sam.membership_id}/reissue").status_code == 303
    membership = fresh(db, Membership, sam.membership_id)
    assert membership.status == Status.INVITED and membership.seen_in_chat_at is None
    assert len(outbox(db, to="sam@example.com", kind="invite")) == 2


def test_cancelling_a_link(moderator, sam_invited, browser, rep_id, db):
    """A cancelled link says so; cancelling again is refused and changes nothing."""
    assert post(moderator, f"{MEMBERS}/{sam_invited.membership_id}/revoke").status_code == 303
    assert "has been cancelled" in text_of(moderator.get(MEMBERS))
    page = browser.get(sam_invited.invite_url)
    assert page.status_code == 410 and "cancelled" in text_of(page)
    revoked = entries(db, "invite_revoke")
    assert len(revoked) == 1 and revoked[0].actor == f"user:{rep_id}"

    before = state(db)
    assert post(moderator, f"{MEMBERS}/{sam_invited.membership_id}/revoke").status_code == 303
    assert "There is no unused link to cancel" in text_of(moderator.get(MEMBERS))
    assert state(db) == before


def test_links_cannot_be_sent_to_a_removed_member(app, moderator, sam, rep_id, db):
    """Once removed, no new link: refused in the domain and on the page, nothing changes."""
    assert remove(moderator, sam.membership_id).status_code == 303
    before = state(db)
    with session_scope() as session, pytest.raises(operations.Refused):
        operations.reissue_invite(session, session.get(Membership, sam.membership_id), user(session, rep_id))
    assert post(moderator, f"{MEMBERS}/{sam.membership_id}/reissue").status_code == 303
    assert "not a current member" in text_of(moderator.get(MEMBERS))
    assert state(db) == before


# --- The chat link ----------------------------------------------------------------------------------------


def test_the_chat_link_page_shows_the_link_to_the_groups_moderators(moderator, client, school):
    """The current link is on the chat link page; signed out, the page asks for sign-in."""
    page = moderator.get(f"/moderate/{ASH}/chat-link")
    assert page.status_code == 200 and ASH_CHAT in text_of(page)
    assert client.get(f"/moderate/{ASH}/chat-link").status_code == 302


def test_rotating_the_chat_link_sends_earlier_invites_to_the_new_one(moderator, sam_invited, browser, rep_id, db):
    """An invite sent before the rotation opens the new link; the ledger keeps only its fingerprint."""
    response = moderator.submit(f"/moderate/{ASH}/chat-link", {"url": f"  {NEW_CHAT} "})
    assert response.status_code == 303
    page = text_of(moderator.get(f"/moderate/{ASH}/chat-link"))
    assert "The chat link has been changed" in page and NEW_CHAT in page
    db.commit()
    assert db.exec(select(Group).where(Group.slug == ASH)).one().chat_url == NEW_CHAT

    opened = browser.submit(sam_invited.invite_url)
    assert opened.status_code == 303 and opened.headers["Location"] == NEW_CHAT

    [entry] = entries(db, "chat_link_set")
    assert json.loads(entry.detail) == {"sha256": hashlib.sha256(NEW_CHAT.encode()).hexdigest()}
    assert (entry.actor, entry.channel) == (f"user:{rep_id}", "moderator")
    assert all("FreshAshInvite" not in f"{e.detail}{e.statement}" for e in db.exec(select(LedgerEntry)))

    same = moderator.submit(f"/moderate/{ASH}/chat-link", {"url": NEW_CHAT})
    assert same.status_code == 303
    assert "nothing has changed" in text_of(moderator.get(f"/moderate/{ASH}/chat-link"))
    assert len(entries(db, "chat_link_set")) == 1
    assert chain_intact(db)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the group's chat link"),
        ("http://chat.whatsapp.com/AbCdEf123456", "Enter a chat link that starts with https://"),
        ("javascript:alert(1)", "Enter a chat link that starts with https://"),
        ("https://chat.whatsapp.com@evil.example/AbCdEf123456", "Enter a chat link that starts with https://"),
        ("https://chat.whatsapp.com:99999/AbCdEf123456", "Enter a chat link that starts with https://"),
        ("https://chat.whatsapp.com.evil.example/AbCdEf123456", "Enter a WhatsApp group invite link"),
        ("https://evil.example/AbCdEf123456", "Enter a WhatsApp group invite link"),
        ("https://chat.whatsapp.com/", "Enter a WhatsApp group invite link"),
        ("https://chat.whatsapp.com/Ab<script>", "Enter a WhatsApp group invite link"),
        ("https://chat.whatsapp.com/Ab Cd", "The chat link must not contain spaces"),
        ("https://chat.whatsapp.com/" + "A" * 480, "The chat link must be 500 characters or fewer"),
    ],
)
def test_bad_chat_links_are_refused(moderator, school, db, url, message):
    """Not https, not WhatsApp, disguised hosts and over-long links: a clear message and no change."""
    before = state(db)
    response = moderator.submit(f"/moderate/{ASH}/chat-link", {"url": url})
    assert response.status_code == 400
    [(target, text)] = error_summary(response)
    assert target == "#url" and text.startswith(message)
    assert state(db) == before


def test_other_platforms_take_any_https_link(app, school, make_account, db):
    """A Signal group's link is not a WhatsApp link, and that is fine; it must still be https."""
    rep = make_account("signal@elm.example", groups=())
    with session_scope() as session:
        group = schools.group_by_slug(session, ASH)
        group.platform = "signal"
        assert operations.set_chat_link(session, group, user(session, rep), "https://signal.group/#CjQKIGabc")
        with pytest.raises(Invalid):
            operations.check_chat_url(group, "http://signal.group/#CjQKIGabc")


# --- The domain functions on their own ----------------------------------------------------------------


def test_each_action_in_the_domain_writes_its_ledger_entry(app, sam_invited, rep_id, db):
    """Without HTTP: revoke, re-issue, tick, set the link and remove, each one ledger entry by the moderator."""
    first = len(entries(db, "invite_issue"))
    with session_scope() as session:
        moderator, membership = user(session, rep_id), session.get(Membership, sam_invited.membership_id)
        assert operations.revoke_invite(session, membership, moderator) == 1
        token = operations.reissue_invite(session, membership, moderator)
        assert invites.redeem(session, token) == ASH_CHAT
        assert operations.mark_seen(session, membership, moderator)
        assert operations.set_chat_link(session, schools.group_by_slug(session, ASH), moderator, NEW_CHAT)
        who = operations.remove(session, membership, moderator, "private_emails", None)
    assert (who.name, who.mobile, who.masked_mobile) == ("Sam Parent", "+447911123456", "+44…456")
    assert (who.mobile_display, who.reason) == ("+44 7911 123456", "Posting private emails")
    db.commit()
    actions = [
        (e.action, e.actor) for e in db.exec(select(LedgerEntry).order_by(LedgerEntry.seq)) if e.actor != "system"
    ][-6:]
    by = f"user:{rep_id}"
    assert actions == [("invite_revoke", by), ("invite_issue", by), ("invite_redeem", actions[2][1]),
                       ("seen_in_chat", by), ("chat_link_set", by), ("remove", by)]
    assert len(entries(db, "invite_issue")) == first + 1
    assert fresh(db, Membership, sam_invited.membership_id).end_note is None  # no note is fine for a named rule
    assert chain_intact(db)


# --- Nothing without the token, nothing outside your groups --------------------------------------------


def post_urls(membership_id: int) -> list[tuple[str, dict]]:
    """Every POST on these pages, with a form that would otherwise be accepted."""
    base = f"{MEMBERS}/{membership_id}"
    return [
        (f"{base}/seen", {"seen": "yes"}),
        (f"{base}/remove", {"reason": "abuse", "note": "x"}),
        (f"{base}/reissue", {}),
        (f"{base}/revoke", {}),
        (f"/moderate/{ASH}/chat-link", {"url": NEW_CHAT}),
    ]


def test_every_post_without_the_csrf_token_is_refused(moderator, sam, db):
    """Another site cannot act for a moderator: 400 and nothing changes, for every action."""
    before = state(db)
    for url, data in post_urls(sam.membership_id):
        response = moderator.client.post(url, data=data)
        assert response.status_code == 400, url
    assert state(db) == before


def test_a_moderator_of_another_group_gets_404_everywhere(make_account, make_browser, sam, moderator, db):
    """Every page and action of Year 2 Ash is 'not found' for Year 4 Birch's moderator, and nothing changes."""
    make_account("other@elm.example", groups=("year-4-birch",))
    other = make_browser()
    assert sign_in(other, "other@elm.example").status_code == 303
    assert remove(moderator, sam.membership_id).status_code == 303  # so the checklist page exists
    before = state(db)
    base = f"{MEMBERS}/{sam.membership_id}"
    for url in (MEMBERS, f"{base}/remove", f"{base}/removed", f"/moderate/{ASH}/chat-link"):
        response = other.get(url)
        assert response.status_code == 404, url
        assert "AshChat" not in response.get_data(as_text=True)
    for url, data in post_urls(sam.membership_id):
        assert post(other, url, data).status_code == 404, url
    assert state(db) == before
