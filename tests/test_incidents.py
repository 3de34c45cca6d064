"""The incident log on a member's record: what the school did, when and who decided, for staff only."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from membership import concerns, incidents, ledger, policies, schools
from membership.db import session_scope
from membership.models import (
    GroupBlock,
    Incident,
    LedgerEntry,
    Membership,
    OutboxMessage,
    Person,
    School,
    Status,
    User,
    Verification,
    utcnow,
)

from .conftest import error_summary, outbox, sign_in, text_of
from .test_school_records import full_journey

NOTE = "Posted a screenshot of a private email from the class teacher.\nSpoke to the parent on the phone."


def when(days_ago: int = 0) -> dict[str, str]:
    """The date fields for a day this many days before today (UK calendar)."""
    day = policies.uk_today() - timedelta(days=days_ago)
    return {"day": str(day.day), "month": str(day.month), "year": str(day.year)}


def form(**changes) -> dict[str, str]:
    """A complete, valid incident form, with any fields changed."""
    return {"action": "cautionary_notice", **when(2), "decided_by": "Mrs Patel, headteacher", "note": NOTE,
            "concern": "", **changes}


def state(db) -> dict:
    """What recording an incident could change."""
    db.commit()

    def count(model) -> int:
        return db.exec(select(func.count()).select_from(model)).one()

    return {
        "incidents": count(Incident), "ledger": count(LedgerEntry), "outbox": count(OutboxMessage),
        "blocks": count(GroupBlock), "statuses": sorted((m.id, m.status) for m in db.exec(select(Membership))),
    }


@pytest.fixture
def member(journey, db, make_account) -> int:
    """A parent who joined Year 2 Ash and used their link (so may be in the chat); the membership id.

    The group has a moderator, ash.rep@elm.example, who is asked to take removed members out of the chat.
    """
    make_account("ash.rep@elm.example")
    full_journey(journey)
    db.commit()
    membership = db.exec(select(Membership)).one()
    assert membership.status == Status.LINK_USED
    return membership.id


def ended_member(school, status: Status = Status.LEFT) -> int:
    """A membership that has already ended, written straight to the database; its id."""
    with session_scope() as session:
        group = schools.group_by_slug(session, "year-2-ash")
        person = Person(name="Former Parent", email="former@example.com")
        session.add(person)
        session.flush()
        membership = Membership(
            group_id=group.id, person_id=person.id, claimed_child_name="Kid K.", relationship="parent",
            status=status, verified_by=Verification.CODE, ended_at=utcnow(),
        )
        session.add(membership)
        session.flush()
        return membership.id


def test_the_record_has_an_incident_log_with_a_link_to_record_an_action(staff, member) -> None:
    """An empty log says so and offers 'Record an action'."""
    response = staff.get(f"/school/records/{member}")
    page = text_of(response)
    assert "Incident log" in page and "No actions have been recorded." in page
    assert f'href="/school/records/{member}/incidents/new"' in response.get_data(as_text=True)
    assert "Record an action" in page


def test_the_form_offers_the_policies_actions_and_starts_with_today_and_you(staff, member) -> None:
    """Every action is a choice; the date starts as today and 'who decided' as the signed-in member of staff."""
    response = staff.get(f"/school/records/{member}/incidents/new")
    assert response.status_code == 200
    page = text_of(response)
    for label in ("Cautionary notice sent", "Invited to a meeting", "Authorities contacted (such as the police)",
                  "Legal advice sought", "Restricted from the school site", "Removed from the group"):
        assert label in page
    assert "this removes them from the group now, and asks the moderators to take them out of the chat" in page
    fields = {name: value for name, value in (
        ("day", when()["day"]), ("month", when()["month"]), ("year", when()["year"]), ("decided_by", "office"))}
    html = response.get_data(as_text=True)
    for name, value in fields.items():
        assert f'name="{name}"' in html and f'value="{value}"' in html, name


def test_an_action_is_logged_with_a_ledger_entry_that_keeps_no_free_text(staff, member, db, school) -> None:
    """The log shows the action, date, who decided, the note and who recorded it; the ledger only digests."""
    before = state(db)
    response = staff.submit(f"/school/records/{member}/incidents/new", form())
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/school/records/{member}")

    db.commit()
    incident = db.exec(select(Incident)).one()
    assert (incident.membership_id, incident.action, incident.occurred_on) == (
        member, "cautionary_notice", policies.uk_today() - timedelta(days=2))
    assert incident.decided_by == "Mrs Patel, headteacher" and incident.note == NOTE

    entry = db.exec(select(LedgerEntry).where(LedgerEntry.action == "incident")).one()
    assert (entry.actor, entry.channel) == (f"user:{incident.recorded_by_user_id}", "staff")
    assert entry.membership_id == member
    person = db.get(Person, db.get(Membership, member).person_id)
    assert entry.person_ref == person.ref
    assert json.loads(entry.detail) == {
        "incident_id": incident.id, "action": "cautionary_notice", "occurred_on": incident.occurred_on.isoformat(),
        "note_sha256": hashlib.sha256(NOTE.encode()).hexdigest(),
        "decided_by_sha256": hashlib.sha256(b"Mrs Patel, headteacher").hexdigest(),
    }
    for column in (entry.detail, entry.statement or ""):
        assert "screenshot" not in column and "Patel" not in column
    assert ledger.verify(db, school.id).ok

    after = state(db)
    assert after["statuses"] == before["statuses"] and after["outbox"] == before["outbox"]

    page = text_of(staff.get(response.headers["Location"]))
    assert "‘Cautionary notice sent’ has been added to the incident log." in page
    assert "Cautionary notice sent" in page and "Mrs Patel, headteacher" in page
    assert "Posted a screenshot of a private email" in page
    day = incident.occurred_on
    assert f"{day.day} {day:%B %Y}" in page
    assert "Action recorded by the school" in page  # the ledger entry, in the record's ledger table


def test_removed_from_the_group_removes_a_current_member(staff, member, db, school) -> None:
    """The member is removed and blocked, the parent is told neutrally, and the moderators get a chat task."""
    response = staff.submit(f"/school/records/{member}/incidents/new", form(action="removed_from_group"))
    assert response.status_code == 303
    page = text_of(staff.get(response.headers["Location"]))
    assert "They have been removed from the group, and the moderators have been asked to take them out" in page

    db.commit()
    membership = db.get(Membership, member)
    assert membership.status == Status.REMOVED and membership.ended_at is not None
    assert membership.end_note == incidents.REMOVAL_NOTE  # the moderators read this note, not the school's
    assert membership.end_reason == "school_decision"  # not a rule a moderator chose
    assert db.exec(select(GroupBlock).where(GroupBlock.membership_id == member)).one().email == "sam@example.com"
    actions = db.exec(select(LedgerEntry.action).where(LedgerEntry.membership_id == member)
                      .order_by(LedgerEntry.seq)).all()
    assert actions[-2:] == ["incident", "remove"]  # their only link was used, so there was none to cancel
    assert ledger.verify(db, school.id).ok

    (removed,) = outbox(db, to="sam@example.com", kind="removed")
    assert "screenshot" not in removed.body_text
    (task,) = outbox(db, to="ash.rep@elm.example", kind="chat-removal")
    assert "The school has removed Sam Parent" in task.body_text
    assert "screenshot" not in task.body_text


def test_the_schools_note_stays_out_of_the_moderators_pages(staff, member, make_browser, db) -> None:
    """After the school removes someone, the moderators' members list does not show the incident note."""
    staff.submit(f"/school/records/{member}/incidents/new", form(action="removed_from_group"))
    rep = make_browser()
    assert sign_in(rep, "ash.rep@elm.example").status_code == 303
    page = text_of(rep.get("/moderate/year-2-ash/members"))
    assert "Sam Parent" in page and "screenshot" not in page and "Mrs Patel" not in page
    assert "Removed by the school after an incident" in page and "spirit of the code" not in page


@pytest.mark.parametrize("status", [Status.LEFT, Status.REMOVED])
def test_removed_from_the_group_for_someone_no_longer_a_member_only_records_it(staff, school, db, status) -> None:
    """Nobody is removed twice: the incident is logged and nothing else changes or is sent."""
    membership_id = ended_member(school, status)
    before = state(db)
    response = staff.submit(f"/school/records/{membership_id}/incidents/new", form(action="removed_from_group"))
    assert response.status_code == 303
    page = text_of(staff.get(response.headers["Location"]))
    assert "has been added to the incident log" in page and "They have been removed" not in page
    after = state(db)
    assert after["incidents"] == before["incidents"] + 1 and after["ledger"] == before["ledger"] + 1
    assert (after["statuses"], after["outbox"], after["blocks"]) == (
        before["statuses"], before["outbox"], before["blocks"])


def test_an_action_can_name_the_concern_it_answers(staff, member, db, school) -> None:
    """Linking to one of the school's concerns shows its reference, which leads to the concern."""
    with session_scope() as session:
        elm = schools.school_by_slug(session, "elm-primary")
        concern_id = concerns.raise_concern(
            session, elm, concerns.ConcernDetails(group=concerns.NOT_SURE, what_happened="Screenshots again")).id
    new_page = staff.get(f"/school/records/{member}/incidents/new").get_data(as_text=True)
    assert f'<option value="{concern_id}">C-{concern_id:06d}, received' in new_page
    response = staff.submit(f"/school/records/{member}/incidents/new",
                            form(action="meeting_invited", concern=str(concern_id)))
    assert response.status_code == 303
    db.commit()
    assert db.exec(select(Incident)).one().concern_id == concern_id
    html = staff.get(f"/school/records/{member}").get_data(as_text=True)
    assert f'href="/school/concerns/{concern_id}">C-{concern_id:06d}</a>' in html
    concern_page = staff.get(f"/school/concerns/{concern_id}")
    assert "Actions recorded" in text_of(concern_page)
    assert "invited to a meeting, about Sam Parent" in text_of(concern_page)
    assert f'href="/school/records/{member}#incident-log"' in concern_page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("changes", "target", "message"),
    [
        ({"action": ""}, "#action-0", "Select what the school did"),
        ({"action": "public_shaming"}, "#action-0", "Select what the school did"),
        ({"day": "", "month": "", "year": ""}, "#day", "Enter the date it happened"),
        ({"month": ""}, "#day", "The date must include a month"),
        ({"day": "31", "month": "2", "year": "2025"}, "#day", "The date must be a real date"),
        ({"day": "x", "month": "3", "year": "2025"}, "#day", "Enter the date as numbers"),
        ({"year": "25"}, "#day", "Enter the date as numbers"),
        ({"day": "²"}, "#day", "Enter the date as numbers"),
        ({"day": "１２"}, "#day", "Enter the date as numbers"),
        ({**when(-1)}, "#day", "The date must be today or in the past"),
        ({"day": "1", "month": "1", "year": "1990"}, "#day", "The date must be within the last 10 years"),
        ({"decided_by": "   "}, "#decided_by", "Enter who decided"),
        ({"decided_by": "x" * 121}, "#decided_by", "Who decided must be 120 characters or fewer"),
        ({"decided_by": "Head\x00teacher"}, "#decided_by", "Who decided must only include"),
        ({"decided_by": "Head\x1fteacher"}, "#decided_by", "Who decided must only include"),
        ({"note": "x" * 2001}, "#note", "The note must be 2,000 characters or fewer"),
        ({"note": "bad\x1bnote"}, "#note", "The note must only include"),
        ({"concern": "999999"}, "#concern", "Select a concern from the list"),
    ],
)
def test_bad_input_records_nothing(staff, member, db, changes, target, message) -> None:
    """Each mistake is named against its field and nothing is written."""
    before = state(db)
    response = staff.submit(f"/school/records/{member}/incidents/new", form(**changes))
    assert response.status_code == 400
    summary = error_summary(response)
    assert any(t == target and m.startswith(message) for t, m in summary), summary
    assert state(db) == before


def test_another_schools_concern_cannot_be_linked(staff, member, other_school, db) -> None:
    """A forged concern id from another school is refused."""
    before = state(db)
    response = staff.submit(f"/school/records/{member}/incidents/new", form(concern=str(other_school["concern_id"])))
    assert response.status_code == 400
    assert ("#concern", "Select a concern from the list, or ‘Not linked to a concern’") in error_summary(response)
    assert state(db) == before


def test_another_schools_member_is_not_found(staff, other_school, db) -> None:
    """Staff cannot open or post the form for another school's member."""
    url = f"/school/records/{other_school['membership_id']}/incidents/new"
    token = staff.hidden_fields(staff.get("/school/").get_data(as_text=True))["csrf_token"]
    before = state(db)
    assert staff.get(url).status_code == 404
    assert staff.client.post(url, data={"csrf_token": token, **form()}).status_code == 404
    assert state(db) == before


def test_moderators_cannot_record_or_read_incidents(moderator, member) -> None:
    """The incident log is the school's: a moderator of the group is told it is not there."""
    assert moderator.get(f"/school/records/{member}/incidents/new").status_code == 404
    assert moderator.get(f"/school/records/{member}").status_code == 404


def test_the_log_lists_most_recent_first(staff, member, db, school) -> None:
    """Several actions are listed by the date they happened, newest first, each with who recorded it."""
    today = policies.uk_today()
    with session_scope() as session:
        elm = schools.school_by_slug(session, "elm-primary")
        membership = session.get(Membership, member)
        user = session.exec(select(User).where(User.email == "office@elm.example")).one()
        for action, days in (("meeting_invited", 3), ("cautionary_notice", 10), ("legal_advice", 1)):
            details = incidents.IncidentDetails(action=action, **when(days), decided_by="Head")
            incidents.record(session, elm, membership, user, details, today)
    db.commit()
    rows = incidents.incident_log(db, db.get(School, school.id), db.get(Membership, member))
    assert [r.incident.action for r in rows] == ["legal_advice", "meeting_invited", "cautionary_notice"]
    assert all(r.recorded_by == "office" for r in rows)
    page = text_of(staff.get(f"/school/records/{member}"))
    assert page.index("Legal advice sought") < page.index("Invited to a meeting") < page.index("Cautionary notice")
    assert ledger.verify(db, school.id).ok
