"""Leaving, erasure and retention as the moderators, the school and the operator see them.

The parents' own pages (/me/) are tested in test_me*.py; these tests drive the domain and the
moderators' console: the "take them out of the chat" task, blocks that survive erasure, and
`flask purge`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from membership import ledger, privacy, schools
from membership.db import session_scope
from membership.models import (
    Concern,
    ConcernStatus,
    EnrolmentCode,
    GroupBlock,
    Invite,
    LedgerEntry,
    Membership,
    OutboxMessage,
    ParentSignIn,
    Person,
    Status,
    utcnow,
)

from .conftest import Browser, outbox, text_of
from .test_cli import cli
from .test_moderate_members import ASH, MEMBERS, join

DAY = timedelta(days=1)


def leave(membership_id: int) -> bool:
    """The parent leaves (as /me/ does); True when moderators got a chat-removal task."""
    with session_scope() as session:
        return privacy.leave(session, session.get(Membership, membership_id), channel="me")


def membership(db, membership_id: int) -> Membership:
    db.commit()
    return db.get(Membership, membership_id)


def person_of(db, membership_id: int) -> Person:
    return db.get(Person, membership(db, membership_id).person_id)


def age(membership_id: int, *, ended_days: float = 0, created_days: float = 0) -> None:
    """Move a membership's dates into the past, as if time had passed."""
    now = utcnow()
    values = {}
    if ended_days:
        values["ended_at"] = now - timedelta(days=ended_days)
    if created_days:
        values["created_at"] = now - timedelta(days=created_days)
    with session_scope() as session:
        session.exec(update(Membership).where(Membership.id == membership_id).values(**values))


# --- Leaving and the moderators' task ------------------------------------------------------------


def test_leaving_after_using_the_link_puts_them_on_the_moderators_list_until_ticked(
    moderator, make_browser, db, make_code
):
    joined = join(make_browser(), db, make_code(ASH))
    assert leave(joined.membership_id) is True

    m = membership(db, joined.membership_id)
    assert m.status == Status.LEFT and m.end_reason == "left" and m.ended_at is not None
    page = moderator.get(MEMBERS)
    assert "To take out of the chat (1)" in text_of(page)
    assert "Sam Parent" in text_of(page) and "+44 7911 123456" in text_of(page)
    dashboard = text_of(moderator.get("/moderate/"))
    assert "To take out of the chat 1" in dashboard

    task = outbox(db, to="rep@elm.example", kind="chat-removal")
    assert len(task) == 1
    assert "Sam Parent" in task[0].body_text and "+44 7911 123456" in task[0].body_text
    assert "has left Year 2 Ash" in task[0].body_text
    assert outbox(db, to="sam@example.com", kind="left")

    done = moderator.client.post(
        f"{MEMBERS}/{joined.membership_id}/out-of-chat",
        data={"csrf_token": Browser.hidden_fields(page.get_data(as_text=True))["csrf_token"]},
    )
    assert done.status_code == 303
    assert "To take out of the chat" not in text_of(moderator.get(MEMBERS))
    m = membership(db, joined.membership_id)
    assert m.chat_removed_at is not None
    actions = [e.action for e in db.exec(select(LedgerEntry).where(LedgerEntry.membership_id == m.id))]
    assert actions[-2:] == ["withdraw", "removed_from_chat"]

    again = moderator.client.post(
        f"{MEMBERS}/{joined.membership_id}/out-of-chat",
        data={"csrf_token": Browser.hidden_fields(page.get_data(as_text=True))["csrf_token"]},
    )
    assert again.status_code == 303
    assert [e.action for e in db.exec(select(LedgerEntry).where(LedgerEntry.membership_id == m.id))] == actions


def test_ticking_out_of_the_chat_needs_csrf_and_the_moderators_own_group(moderator, make_browser, db, make_code):
    joined = join(make_browser(), db, make_code(ASH))
    leave(joined.membership_id)
    assert moderator.client.post(f"{MEMBERS}/{joined.membership_id}/out-of-chat").status_code == 400
    token = Browser.hidden_fields(moderator.get(MEMBERS).get_data(as_text=True))["csrf_token"]
    other = moderator.client.post(
        f"/moderate/year-4-birch/members/{joined.membership_id}/out-of-chat", data={"csrf_token": token}
    )
    assert other.status_code == 404
    assert membership(db, joined.membership_id).chat_removed_at is None


def test_leaving_before_using_the_link_gives_no_task_and_the_link_dies(moderator, make_browser, db, make_code):
    phone = make_browser()
    joined = join(phone, db, make_code(ASH), redeem=False)
    assert leave(joined.membership_id) is False
    assert not outbox(db, to="rep@elm.example", kind="chat-removal")
    assert "To take out of the chat" not in text_of(moderator.get(MEMBERS))
    assert phone.get(joined.invite_url).status_code == 410
    db.commit()
    assert all(i.revoked_at for i in db.exec(select(Invite).where(Invite.membership_id == joined.membership_id)))


def test_leaving_is_not_a_penalty_the_code_place_comes_back(make_browser, db, make_code):
    code = make_code(ASH, uses_allowed=1)
    joined = join(make_browser(), db, code)
    db.commit()
    code_row = db.exec(select(EnrolmentCode)).one()
    assert code_row.uses_taken == 1
    leave(joined.membership_id)
    db.commit()
    db.refresh(code_row)
    assert code_row.uses_taken == 0
    again = join(make_browser(), db, code)
    assert membership(db, again.membership_id).status == Status.LINK_USED


def test_an_ended_membership_cannot_be_left_twice(make_browser, db, make_code):
    joined = join(make_browser(), db, make_code(ASH))
    leave(joined.membership_id)
    with pytest.raises(privacy.NotLeavable):
        leave(joined.membership_id)


def test_a_moderator_removal_stays_on_the_list_until_ticked_and_other_moderators_are_told(
    moderator, make_account, make_browser, db, make_code
):
    make_account("second.rep@elm.example")
    joined = join(make_browser(), db, make_code(ASH))
    page = moderator.submit(f"{MEMBERS}/{joined.membership_id}/remove", {"reason": "abuse", "note": ""})
    assert page.status_code == 303
    checklist = moderator.get(page.headers["Location"])
    assert "Done: they are out of the chat" in text_of(checklist)
    assert "To take out of the chat (1)" in text_of(moderator.get(MEMBERS))
    # The moderator who removed them is looking at the checklist; the other one is emailed.
    assert not outbox(db, to="rep@elm.example", kind="chat-removal")
    told = outbox(db, to="second.rep@elm.example", kind="chat-removal")
    assert len(told) == 1 and "Another moderator has removed Sam Parent" in told[0].body_text


# --- Erasure ------------------------------------------------------------------------------------


def test_erasure_keeps_the_ledger_verifying_and_leaves_nothing_readable(moderator, make_browser, db, make_code):
    joined = join(make_browser(), db, make_code(ASH))
    ref = person_of(db, joined.membership_id).ref
    with session_scope() as session:
        assert privacy.erase_email(session, "sam@example.com") == 1

    person = person_of(db, joined.membership_id)
    assert (person.name, person.email, person.mobile) == (None, None, None)
    assert person.erased_at is not None and person.ref == ref
    assert membership(db, joined.membership_id).status == Status.LEFT
    mail_to_them = db.exec(select(OutboxMessage).where(OutboxMessage.person_id == person.id)).all()
    assert mail_to_them and all(m.to_addr == "" and "Sam" not in m.body_text for m in mail_to_them)
    # Nothing still waiting is sent to an address we no longer have.
    assert all(m.sent_at is not None or m.failed_at is not None for m in mail_to_them)
    school_id = schools.school_by_slug(db, "elm-primary").id
    assert ledger.verify(db, school_id).ok
    entries = db.exec(select(LedgerEntry).where(LedgerEntry.person_ref == ref)).all()
    assert entries[-1].action == "erase" and "sam" not in entries[-1].detail.lower()
    # The moderators are still asked to take the (now nameless) member out of the chat.
    assert "A member who has erased their details" in text_of(moderator.get(MEMBERS))


def test_a_removed_person_who_erases_their_details_is_still_kept_out(moderator, make_browser, db, make_code):
    joined = join(make_browser(), db, make_code(ASH))
    moderator.submit(f"{MEMBERS}/{joined.membership_id}/remove", {"reason": "abuse", "note": "Insults."})
    with session_scope() as session:
        privacy.erase_email(session, "sam@example.com")
    db.commit()
    block = db.exec(select(GroupBlock)).one()
    assert block.email is None and block.mobile is None
    assert block.email_hmac and block.mobile_hmac
    assert membership(db, joined.membership_id).end_note is None

    phone = make_browser()
    assert phone.submit(f"/join/{ASH}", {"code": make_code(ASH, name="Ben T.")}).status_code == 303
    refused = phone.submit(f"/join/{ASH}/details", {
        "name": "Sam Parent", "relationship": "parent", "email": "sam@example.com", "mobile": "",
    })
    assert refused.status_code == 403


def test_a_parent_who_left_and_erased_can_join_again_as_a_new_person(make_browser, db, make_code):
    code = make_code(ASH)
    first = join(make_browser(), db, code)
    with session_scope() as session:
        privacy.erase_email(session, "sam@example.com")
    again = join(make_browser(), db, code)
    assert again.membership_id != first.membership_id
    assert person_of(db, again.membership_id).email == "sam@example.com"
    assert person_of(db, again.membership_id).ref != person_of(db, first.membership_id).ref


def test_erasing_twice_changes_nothing(make_browser, db, make_code):
    join(make_browser(), db, make_code(ASH))
    with session_scope() as session:
        assert privacy.erase_email(session, "sam@example.com") == 1
    db.commit()
    entries = len(db.exec(select(LedgerEntry)).all())
    with session_scope() as session:
        assert privacy.erase_email(session, "sam@example.com") == 0
    db.commit()
    assert len(db.exec(select(LedgerEntry)).all()) == entries


# --- Retention: flask purge -----------------------------------------------------------------------


@pytest.fixture
def people(app, make_browser, db, make_code, moderator):
    """Parents in every state the retention job must tell apart; returns their membership ids by name."""
    ids = {}
    ids["current"] = join(make_browser(), db, make_code(ASH), email="current@example.com").membership_id
    ids["left_long_ago"] = join(make_browser(), db, make_code(ASH), email="old.leaver@example.com").membership_id
    ids["left_lately"] = join(make_browser(), db, make_code(ASH), email="new.leaver@example.com").membership_id
    ids["removed_long_ago"] = join(make_browser(), db, make_code(ASH), email="removed@example.com").membership_id
    for name in ("left_long_ago", "left_lately"):
        leave(ids[name])
    moderator.submit(f"{MEMBERS}/{ids['removed_long_ago']}/remove", {"reason": "abuse", "note": "x"})
    age(ids["left_long_ago"], ended_days=200)
    age(ids["removed_long_ago"], ended_days=400)
    age(ids["left_lately"], ended_days=10)

    stale = make_browser()
    stale.submit(f"/join/{ASH}", {"code": make_code(ASH)})
    stale.submit(f"/join/{ASH}/details", {"name": "Never Confirmed", "relationship": "parent",
                                          "email": "stale@example.com", "mobile": ""})
    fresh = make_browser()
    fresh.submit(f"/join/{ASH}", {"code": make_code(ASH)})
    fresh.submit(f"/join/{ASH}/details", {"name": "Just Started", "relationship": "parent",
                                          "email": "fresh@example.com", "mobile": ""})
    db.commit()
    for email, name, days in (("stale@example.com", "stale", 2), ("fresh@example.com", "fresh", 0)):
        ids[name] = db.exec(
            select(Membership.id).join(Person, Person.id == Membership.person_id).where(Person.email == email)
        ).one()
        if days:
            age(ids[name], created_days=days)
    return ids


def erased(db, ids: dict) -> set[str]:
    db.commit()
    return {name for name, mid in ids.items() if person_of(db, mid).erased_at is not None}


def test_purge_erases_only_what_the_retention_period_allows(app, db, people):
    app.config["RETENTION_DAYS"] = 180
    dry = cli(app, "purge", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Dry run: nothing was changed" in dry.output
    assert "Would erase the personal details of 3 people: 1 left a group, 1 removed, 0 declined" in dry.output
    assert "1 never confirmed their email" in dry.output
    assert erased(db, people) == set()

    stale_code = db.get(EnrolmentCode, membership(db, people["stale"]).code_id)
    held = stale_code.uses_taken
    result = cli(app, "purge")
    assert result.exit_code == 0, result.output
    assert "Erased the personal details of 3 people" in result.output
    assert erased(db, people) == {"left_long_ago", "removed_long_ago", "stale"}
    stale = membership(db, people["stale"])
    assert stale.status == Status.EXPIRED
    db.refresh(stale_code)
    assert stale_code.uses_taken == held - 1  # the unconfirmed start's code place went back
    assert person_of(db, people["current"]).email == "current@example.com"
    assert person_of(db, people["left_lately"]).email == "new.leaver@example.com"
    assert ledger.verify(db, schools.school_by_slug(db, "elm-primary").id).ok

    again = cli(app, "purge")
    assert "Erased the personal details of 0 people" in again.output
    assert erased(db, people) == {"left_long_ago", "removed_long_ago", "stale"}


def test_purge_honours_a_shorter_period_and_clears_old_links_mail_and_concern_contacts(app, db, people):
    now = utcnow()
    with session_scope() as session:
        school = schools.school_by_slug(session, "elm-primary")
        session.add(ParentSignIn(email="current@example.com", nonce_hash="0" * 64,
                                 created_at=now - 2 * DAY, expires_at=now - 2 * DAY))
        session.add(ParentSignIn(email="current@example.com", nonce_hash="1" * 64, expires_at=now + DAY))
        session.add(Concern(school_id=school.id, what_happened="Old matter", contact_name="Reporter",
                            contact_email="reporter@example.com", status=ConcernStatus.CLOSED,
                            closed_at=now - 40 * DAY))
        session.add(Concern(school_id=school.id, what_happened="Open matter", contact_email="open@example.com"))
        session.exec(update(OutboxMessage).values(sent_at=now - 40 * DAY))
    result = cli(app, "purge", "--days", "7")
    assert result.exit_code == 0, result.output
    assert erased(db, people) == {"left_long_ago", "removed_long_ago", "stale", "left_lately"}
    assert "Deleted 1 old sign-in links" in result.output
    assert len(db.exec(select(ParentSignIn)).all()) == 1
    assert db.exec(select(OutboxMessage).where(OutboxMessage.sent_at < now - 7 * DAY)).all() == []
    concerns = {c.what_happened: c for c in db.exec(select(Concern))}
    assert concerns["Old matter"].contact_email is None and concerns["Old matter"].contact_erased_at is not None
    assert concerns["Open matter"].contact_email == "open@example.com"
    assert "erased the contact details of 1 concerns" in result.output


def test_emails_to_moderators_naming_an_erased_parent_are_blanked_once_sent(
    app, moderator, make_browser, db, make_code
):
    joined = join(make_browser(), db, make_code(ASH))
    with session_scope() as session:
        privacy.erase_email(session, "sam@example.com")
    # The chat-removal email still goes: the moderator needs the name and number to act on it.
    task = outbox(db, to="rep@elm.example", kind="chat-removal")[-1]
    assert "Sam Parent" in task.body_text and task.sent_at is None
    with session_scope() as session:
        session.exec(update(OutboxMessage).where(OutboxMessage.id == task.id).values(sent_at=utcnow()))
    result = cli(app, "purge")
    assert "blanked 1 sent emails naming people who have since erased their details" in result.output
    db.commit()
    db.refresh(task)
    assert "Sam" not in task.body_text and "7911" not in task.body_text
    assert membership(db, joined.membership_id).status == Status.LEFT
