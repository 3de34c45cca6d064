"""No page's number of SQL statements grows with the data: each is counted at 10 and at 1,000 members.

The members are written straight to the database (people, children and their codes, memberships
in every state, used invites, both agreements in a correctly chained ledger, concerns), so the
pages have real rows of every kind to read. A page that ran a query per member would run about
a thousand more statements the second time.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import select

from membership import codes, journey, ledger, policies, schools
from membership.db import session_scope
from membership.models import (
    Child,
    Concern,
    DocumentKind,
    EnrolmentCode,
    Invite,
    LedgerEntry,
    LedgerHead,
    Membership,
    Person,
    Role,
    Status,
    Verification,
    utcnow,
)

from .conftest import Browser, counting_statements, link_in, outbox, sign_in

SMALL, LARGE = 10, 1000
ASH, BIRCH = "year-2-ash", "year-4-birch"
# Of every ten members: mostly in the chat, some waiting for a moderator, some gone.
MIX = [Status.LINK_USED] * 6 + [Status.INVITED, Status.PENDING_APPROVAL, Status.LEFT, Status.REMOVED]


def seed(count: int, start: int = 0) -> None:
    """Add `count` members to Year 2 Ash (and their requests to Year 4 Birch), with everything pages read."""
    now = utcnow()
    with session_scope() as session:
        ash, birch = schools.group_by_slug(session, ASH), schools.group_by_slug(session, BIRCH)
        coc = policies.current(session, ash.school_id, DocumentKind.CODE_OF_CONDUCT)
        notice = policies.current(session, ash.school_id, DocumentKind.DATA_NOTICE)
        people, children, rows = [], [], []
        for n in range(start, start + count):
            status = MIX[n % len(MIX)]
            group = birch if status == Status.PENDING_APPROVAL else ash
            people.append(Person(name=f"Parent {n:04d}", email=f"parent{n}@example.com", mobile="+447911123456"))
            children.append(Child(group_id=group.id, display_name=f"Child {n:04d}"))
            rows.append((status, group))
        session.add_all(people + children)
        session.flush()
        session.add_all([
            EnrolmentCode(child_id=child.id, code_hmac=codes.code_hmac(codes.generate()), uses_taken=1)
            for child in children
        ])
        memberships = []
        for person, child, (status, group) in zip(people, children, rows, strict=True):
            ended = status in (Status.LEFT, Status.REMOVED)
            memberships.append(Membership(
                group_id=group.id, person_id=person.id, child_id=child.id, relationship="parent", status=status,
                verified_by=Verification.CODE, coc_version_id=coc.id, notice_version_id=notice.id,
                email_verified_at=now, agreed_at=now, approved_at=None if status == Status.PENDING_APPROVAL else now,
                ended_at=now if ended else None, end_reason="abuse" if status == Status.REMOVED else None,
                chat_removal_due_at=now if ended else None,
            ))
        session.add_all(memberships)
        session.flush()
        session.add_all([
            Invite(membership_id=m.id, nonce_hash="0" * 64, expires_at=now + timedelta(days=3),
                   used_at=now if m.status != Status.INVITED else None)
            for m in memberships if m.status not in (Status.PENDING_APPROVAL,)
        ])
        _chain_agreements(session, ash.school_id, memberships, people, coc, notice)
        session.add_all([
            Concern(school_id=ash.school_id, group_id=ash.id, what_happened=f"Concern {n}")
            for n in range(start, start + count)
        ])


def _chain_agreements(session, school_id, memberships, people, coc, notice) -> None:
    """Both agreements per member, appended to the school's chain as the journey would (but in bulk)."""
    head = session.get(LedgerHead, school_id)
    seq, prev = head.seq, head.head_hash
    entries = []
    for membership, person in zip(memberships, people, strict=True):
        for action, version in (("agree", coc), ("acknowledge", notice)):
            seq += 1
            entry = LedgerEntry(
                school_id=school_id, seq=seq, created_at=utcnow(), action=action, person_ref=person.ref,
                actor=f"person:{person.ref}", group_id=membership.group_id, child_id=membership.child_id,
                membership_id=membership.id, document_kind=version.kind, document_version=version.number,
                document_version_id=version.id, document_sha256=version.sha256,
                statement=policies.agreement_statement(version), channel="web", detail="{}", prev_hash=prev,
                entry_hash="",
            )
            entry.entry_hash = prev = ledger.compute_hash(prev, entry)
            entries.append(entry)
    session.add_all(entries)
    head.seq, head.head_hash = seq, prev
    session.add(head)


def statements(app, browser: Browser, url: str) -> int:
    """How many statements one GET of this page runs (it must answer 200)."""
    with counting_statements(app) as run:
        response = browser.get(url)
    assert response.status_code == 200, f"{url} answered {response.status_code}"
    return len(run)


def pages_at_both_sizes(app, browser: Browser, urls: list[str]) -> dict[str, tuple[int, int]]:
    """Each page's statement count at SMALL members, then at LARGE."""
    seed(SMALL)
    small = {url: statements(app, browser, url) for url in urls}
    seed(LARGE - SMALL, start=SMALL)
    large = {url: statements(app, browser, url) for url in urls}
    return {url: (small[url], large[url]) for url in urls}


def assert_constant(counts: dict[str, tuple[int, int]]) -> None:
    grown = {url: pair for url, pair in counts.items() if pair[1] > pair[0]}
    assert not grown, f"statements grew from {SMALL} to {LARGE} members: {grown}"


def test_the_moderators_pages_run_a_fixed_number_of_statements(app, school, make_account, make_browser):
    make_account("rep@elm.example", groups=(ASH, BIRCH))
    phone = make_browser()
    sign_in(phone, "rep@elm.example")
    seed(1)  # a member and a request (MIX[7]) whose own pages are also counted
    seed(1, start=MIX.index(Status.PENDING_APPROVAL))
    with session_scope() as session:
        first = session.exec(select(Membership.id).where(Membership.status == Status.LINK_USED)).first()
        pending = session.exec(select(Membership.id).where(Membership.status == Status.PENDING_APPROVAL)).first()
    urls = [
        "/moderate/", f"/moderate/{ASH}/", f"/moderate/{BIRCH}/", f"/moderate/{ASH}/members",
        f"/moderate/{BIRCH}/members", f"/moderate/{ASH}/chat-link", f"/moderate/{ASH}/members/{first}/remove",
        f"/moderate/{BIRCH}/requests/{pending}/reject",
    ]
    assert_constant(pages_at_both_sizes(app, phone, urls))
    # The pages really listed the thousand: the last member and the last request are on them.
    assert "Parent 0990" in phone.get(f"/moderate/{ASH}/members").get_data(as_text=True)
    assert "Parent 0997" in phone.get(f"/moderate/{BIRCH}/").get_data(as_text=True)


def test_the_staff_pages_run_a_fixed_number_of_statements(app, school, make_account, make_browser):
    make_account("office@elm.example", Role.STAFF, (), accept_notice=False)
    phone = make_browser()
    sign_in(phone, "office@elm.example")
    seed(1)
    with session_scope() as session:
        member = session.exec(select(Membership.id).where(Membership.status == Status.LINK_USED)).first()
        child = session.exec(select(Child.id)).first()
        concern = session.exec(select(Concern.id)).first()
    urls = [
        "/school/", "/school/groups", f"/school/groups/{ASH}/edit", f"/school/groups/{ASH}/moderators",
        "/school/roster", f"/school/children/{child}", "/school/records", f"/school/records?group={ASH}",
        "/school/records?show=removed", "/school/records?q=Parent", f"/school/records/{member}",
        f"/school/records/{member}/incidents/new", "/school/concerns", f"/school/concerns/{concern}",
        "/school/policies", "/school/policies/code_of_conduct", "/school/policies/code_of_conduct/1",
        "/school/ledger",
    ]
    assert_constant(pages_at_both_sizes(app, phone, urls))
    assert "Child 0999" in phone.get("/school/roster").get_data(as_text=True)


@pytest.mark.parametrize("slug", [ASH, BIRCH])
def test_every_step_of_the_parent_journey_runs_a_fixed_number_of_statements(app, school, make_browser, make_code, db,
                                                                              slug):
    """The same journey, step by step, with 10 and then 1,000 other members in the school."""

    def journey(number: int) -> list[int]:
        phone, email = make_browser(), f"new.parent{number}@example.com"
        code = make_code(slug, name=f"New {number}")
        counts = []

        def step(action) -> object:
            with counting_statements(app) as run:
                response = action()
            counts.append(len(run))
            return response

        step(lambda: phone.get(f"/join/{slug}"))
        step(lambda: phone.submit(f"/join/{slug}", {"code": code}))
        step(lambda: phone.get(f"/join/{slug}/details"))
        step(lambda: phone.submit(f"/join/{slug}/details", {
            "name": f"New Parent {number}", "relationship": "parent", "email": email, "mobile": "07911 123456",
        }))
        step(lambda: phone.get(f"/join/{slug}/check-email"))
        link = link_in(outbox(db, to=email, kind="verify-email")[-1])
        step(lambda: phone.get(link))
        step(lambda: phone.get(f"/join/{slug}/agree"))
        agreed = step(lambda: phone.submit(f"/join/{slug}/agree", {"agree_coc": "y", "acknowledge_notice": "y"}))
        where = agreed.headers["Location"]
        step(lambda: phone.get(where))
        if "/invite/" in where:
            step(lambda: phone.submit(where))
        return counts

    seed(SMALL)
    small = journey(1)
    seed(LARGE - SMALL, start=SMALL)
    large = journey(2)
    assert len(small) == len(large)
    grown = [(n, a, b) for n, (a, b) in enumerate(zip(small, large, strict=True)) if b > a]
    assert not grown, f"journey steps whose statements grew (step, at {SMALL}, at {LARGE}): {grown}"


def test_the_parents_own_pages_run_a_fixed_number_of_statements(app, school, make_browser, make_code, db):
    phone = make_browser()
    code = make_code(ASH)
    phone.submit(f"/join/{ASH}", {"code": code})
    phone.submit(f"/join/{ASH}/details", {"name": "Me Parent", "relationship": "parent", "email": "me@example.com",
                                          "mobile": ""})
    phone.get(link_in(outbox(db, to="me@example.com", kind="verify-email")[-1]))
    phone.submit(f"/join/{ASH}/agree", {"agree_coc": "y", "acknowledge_notice": "y"})
    phone.submit("/me/", {"email": "me@example.com"})
    phone.submit(link_in(outbox(db, to="me@example.com", kind="parent-sign-in")[-1]))
    db.commit()
    mine = db.exec(select(Membership.id).join(Person).where(Person.email == "me@example.com")).one()
    urls = ["/me/", "/me/data.json", f"/me/groups/{mine}/leave", "/me/erase", "/concerns/elm-primary", "/",
            "/healthz"]
    assert_constant(pages_at_both_sizes(app, phone, urls))


def test_the_seeded_chain_is_a_real_one(app, school, db):
    """The bulk-written agreements form a valid chain, so the pages read what the journey would write."""
    seed(SMALL)
    db.commit()
    assert ledger.verify(db, schools.school_by_slug(db, "elm-primary").id).ok
    assert len(re.findall("agree", " ".join(e.action for e in db.exec(select(LedgerEntry))))) >= SMALL


def test_a_parents_place_in_a_class_is_found_from_their_email_not_by_reading_the_class(app, school, db):
    """The start's 'already a member?' lookup reads the email's index entries, not every member of the class.

    SQLite plans it with no statistics at all, so the statement's own shape must lead it there;
    PostgreSQL plans it from statistics, analysed here as autovacuum keeps them.
    """
    seed(LARGE)
    db.commit()
    postgres = db.get_bind().dialect.name == "postgresql"
    if postgres:
        db.connection().exec_driver_sql("ANALYZE")
    ash = schools.group_by_slug(db, ASH)
    lookup = journey._LIVE_MEMBERSHIP.params(group_id=ash.id, email="parent5@example.com")
    sql = str(lookup.compile(db.get_bind(), compile_kwargs={"literal_binds": True}))
    plan = "\n".join(str(row[-1]) for row in db.connection().exec_driver_sql(
        ("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + sql))
    assert "ix_person_email" in plan and "ix_membership_person_group" in plan, plan
    found = journey.live_membership(db, ash.id, "parent5@example.com")
    assert db.get(Person, found.person_id).name == "Parent 0005" and found.group_id == ash.id
    assert journey.live_membership(db, ash.id, "parent9@example.com") is None  # removed: not a live place
