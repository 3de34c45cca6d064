"""Staff acceptance records: the list, one person's record, the CSV export and the ledger check."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlmodel import select

from membership import journey as steps
from membership import ledger, policies, privacy, schools
from membership.db import session_scope
from membership.models import (
    DocumentKind,
    LedgerEntry,
    Membership,
    Person,
    School,
    Status,
    Verification,
    utcnow,
)
from membership.records import EXPORT_COLUMNS, utc_iso

from .conftest import counting_statements, snapshot, text_of
from .test_ledger import drop_guard, run_sql

# --- Fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def add_members(app, school):
    """A factory: memberships written straight to the database (fast), agreed to the current versions.

    Returns their ids. No ledger entries: the list is read from memberships, so this is enough
    to fill it, and quick enough for hundreds.
    """

    def add(count: int, slug: str = "year-2-ash", *, prefix: str = "Parent", status: Status = Status.APPROVED,
            needs_reagree: bool = False) -> list[int]:
        with session_scope() as session:
            group = schools.group_by_slug(session, slug)
            coc, notice = steps.current_documents(session, group.school_id)
            ended = status in (Status.LEFT, Status.REMOVED)
            ids = []
            for n in range(count):
                person = Person(name=f"{prefix} {n:03d}", email=f"{prefix.lower()}{n}@example.com")
                session.add(person)
                session.flush()
                membership = Membership(
                    group_id=group.id, person_id=person.id, claimed_child_name=f"Kid {n:03d}", relationship="parent",
                    status=status, verified_by=Verification.CODE, coc_version_id=coc.id,
                    notice_version_id=notice.id, agreed_at=utcnow(), approved_at=utcnow(),
                    needs_reagree=needs_reagree, ended_at=utcnow() if ended else None,
                    end_reason="abuse" if status == Status.REMOVED else None,
                )
                session.add(membership)
                session.flush()
                ids.append(membership.id)
            return ids

    return add


def full_journey(journey, **details):
    """A parent joins the open group through every step and opens the chat link."""
    agreed = journey.through_agree(**details)
    assert agreed.status_code == 303
    assert journey.browser.submit(agreed.headers["Location"]).status_code == 303


def elm(db) -> School:
    """Elm Primary School, fresh."""
    db.commit()
    return db.exec(select(School).where(School.slug == "elm-primary")).one()




def names_on(response) -> list[str]:
    """The names in the records table, in order."""
    html = response.get_data(as_text=True)
    return re.findall(r'<th scope="row" data-label="Name"><a[^>]*>([^<]*)</a>', html)


def parse_export(response) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The export's head lines as a dict and its entries as dicts keyed by column."""
    text = response.get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    blank = rows.index([])
    head = {row[0]: row[1] for row in rows[:blank]}
    header = rows[blank + 1]
    assert tuple(header) == EXPORT_COLUMNS
    return head, [dict(zip(header, row, strict=True)) for row in rows[blank + 2:]]


def as_entry(row: dict[str, str], school_id: int) -> LedgerEntry:
    """A ledger entry rebuilt from one exported row, as a school would to recompute its hash."""
    from datetime import datetime

    def number(value: str) -> int | None:
        return int(value) if value else None

    return LedgerEntry(
        school_id=school_id, seq=int(row["seq"]),
        created_at=datetime.strptime(row["created_at"], "%Y-%m-%dT%H:%M:%S.%f%z"),
        action=row["action"], person_ref=row["person_ref"] or None, actor=row["actor"],
        group_id=number(row["group_id"]), child_id=number(row["child_id"]), membership_id=number(row["membership_id"]),
        document_kind=row["document_kind"] or None, document_version=number(row["document_version"]),
        document_version_id=number(row["document_version_id"]), document_sha256=row["document_sha256"] or None,
        statement=row["statement"] or None, channel=row["channel"], detail=row["detail"],
        prev_hash=row["prev_hash"], entry_hash=row["entry_hash"],
    )


# --- The records list ---------------------------------------------------------------------------


def test_records_show_who_agreed_to_what(staff, journey) -> None:
    """After a parent's journey the list shows their name, child, how they were checked and the versions agreed."""
    full_journey(journey)
    response = staff.get("/school/records")
    page = text_of(response)
    assert response.status_code == 200
    assert names_on(response) == ["Sam Parent"]
    assert "Amelia R." in page and "Code from the letter" in page
    assert "Code of conduct v1, data notice v1" in page and "Link used" in page
    assert '<caption class="table__caption">' in response.get_data(as_text=True)
    assert 'aria-current="page" href="/school/records"' in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("show", "expected"),
    [
        ("", {"Active", "Stale", "Waiting", "Gone", "Out"}),
        ("reagree", {"Stale"}),
        ("pending", {"Waiting"}),
        ("removed", {"Gone"}),
        ("left", {"Out"}),
        ("nonsense", {"Active", "Stale", "Waiting", "Gone", "Out"}),
    ],
)
def test_filters(staff, add_members, show, expected) -> None:
    """Each filter shows only its people; an unknown filter shows everyone."""
    add_members(1, prefix="Active")
    add_members(1, prefix="Stale", needs_reagree=True)
    add_members(1, prefix="Waiting", status=Status.PENDING_APPROVAL)
    add_members(1, prefix="Gone", status=Status.REMOVED)
    add_members(1, prefix="Out", status=Status.LEFT)
    shown = {name.split()[0] for name in names_on(staff.get(f"/school/records?show={show}"))}
    assert shown == expected


def test_a_new_material_version_puts_members_in_must_reagree(staff, add_members, db) -> None:
    """Members who agreed to an older version than the newest material one must re-agree; a minor one does not."""
    add_members(2, prefix="Member")
    with session_scope() as session:
        policies.publish(session, elm(db).id, DocumentKind.DATA_NOTICE, "A minor fix.", material=False)
    assert names_on(staff.get("/school/records?show=reagree")) == []
    with session_scope() as session:
        policies.publish(session, elm(db).id, DocumentKind.CODE_OF_CONDUCT, "New rules.", material=True)
    assert names_on(staff.get("/school/records?show=reagree")) == ["Member 000", "Member 001"]


def test_group_filter_and_name_search(staff, add_members, other_school) -> None:
    """?group narrows to one group; the search matches part of a name whatever its case, and % is literal."""
    add_members(2, "year-2-ash", prefix="Ash")
    add_members(2, "year-4-birch", prefix="Birch")
    assert names_on(staff.get("/school/records?group=year-4-birch")) == ["Birch 000", "Birch 001"]
    assert names_on(staff.get("/school/records?q=aSh 00")) == ["Ash 000", "Ash 001"]
    assert names_on(staff.get("/school/records?q=001&group=year-2-ash")) == ["Ash 001"]
    assert names_on(staff.get("/school/records?q=%25")) == []
    assert staff.get("/school/records?group=year-1-pine").status_code == 404
    assert staff.get("/school/records.csv?group=year-1-pine").status_code == 404


def test_names_are_listed_and_searched_whatever_their_case_and_alphabet(staff, add_members, db) -> None:
    """Names are ordered case aside, 'łucja' finds 'Łucja' (not only A to Z folds), and erased people come last."""
    ids = {}
    for prefix in ("zara", "Łucja", "Adam", "bea"):
        ids[prefix] = add_members(1, prefix=prefix)[0]
    listed = names_on(staff.get("/school/records?group=year-2-ash"))
    assert [name for name in listed if name != "Łucja 000"] == ["Adam 000", "bea 000", "zara 000"]
    assert names_on(staff.get("/school/records?q=łucja")) == ["Łucja 000"]
    adam = db.get(Person, db.get(Membership, ids["Adam"]).person_id)
    privacy.erase_person(db, adam, actor="system", channel="retention", why="test")
    db.commit()
    listed = names_on(staff.get("/school/records?group=year-2-ash"))
    assert listed[-1] == "Details erased" and listed.index("bea 000") < listed.index("zara 000")
    assert names_on(staff.get("/school/records?q=adam")) == []


def test_pagination_fifty_to_a_page(staff, add_members) -> None:
    """120 people make three pages of 50, 50 and 20, with previous and next links keeping the filters."""
    add_members(120, prefix="Parent")
    first = staff.get("/school/records?group=year-2-ash")
    assert len(names_on(first)) == 50 and names_on(first)[0] == "Parent 000"
    assert "page 1 of 3" in text_of(first)
    html = first.get_data(as_text=True)
    assert 'href="/school/records?group=year-2-ash&amp;page=2" rel="next"' in html and 'rel="prev"' not in html
    third = staff.get("/school/records?group=year-2-ash&page=3")
    assert names_on(third)[0] == "Parent 100" and len(names_on(third)) == 20
    assert 'rel="next"' not in third.get_data(as_text=True)
    assert names_on(staff.get("/school/records?page=99")) == names_on(third)  # past the end: the last page
    assert names_on(staff.get("/school/records?page=abc")) == names_on(first)


def test_a_page_that_spans_two_groups_keeps_the_order(staff, add_members) -> None:
    """Groups by name, people by name within each: page 1 ends in the second group, page 2 carries on from it."""
    add_members(30, "year-2-ash", prefix="Ash")
    add_members(40, "year-4-birch", prefix="Birch")
    first, second = (names_on(staff.get(f"/school/records?page={n}")) for n in (1, 2))
    assert first == [f"Ash {n:03d}" for n in range(30)] + [f"Birch {n:03d}" for n in range(20)]
    assert second == [f"Birch {n:03d}" for n in range(20, 40)]
    ones = [f"Ash {n:03d}" for n in range(30) if "1" in f"{n:03d}"]
    ones += [f"Birch {n:03d}" for n in range(40) if "1" in f"{n:03d}"]
    assert names_on(staff.get("/school/records?q=1&page=1")) == ones


def test_the_list_runs_the_same_number_of_statements_for_10_or_200_members(app, staff, add_members) -> None:
    """The list's statements do not grow with the number of members (no query per row)."""
    counts = []
    for more in (10, 190):  # 10 members, then 200
        add_members(more, prefix=f"Batch{more}")
        staff.get("/school/records")  # warm up: first-use lookups are not the list's
        with counting_statements(app) as statements:
            for url in ("/school/records", "/school/records?show=reagree&q=batch", "/school/records?page=2"):
                assert staff.get(url).status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


def test_a_person_record_lists_every_ledger_entry_about_them(staff, journey, db) -> None:
    """One person's page shows each entry with its statement and who made it, oldest first."""
    full_journey(journey)
    db.commit()
    membership = db.exec(select(Membership)).one()
    response = staff.get(f"/school/records/{membership.id}")
    page = text_of(response)
    assert response.status_code == 200
    for words in ("Asked to join", "Agreed to Class Group Code of Conduct version 1",
                  "Acknowledged Data notice version 1", "Approved", "Link sent", "Link used"):
        assert words in page, words
    statement = db.exec(select(LedgerEntry.statement).where(LedgerEntry.action == "agree")).one()
    assert statement in page
    assert "The parent or carer" in page


# --- The CSV export -----------------------------------------------------------------------------


def test_export_matches_the_ledger_exactly(staff, journey, db) -> None:
    """Every entry is a row with its values and hashes; the head line is verify's head; the file re-verifies."""
    full_journey(journey)
    staff.submit("/school/groups/year-4-birch/moderators", {"email": "rep@example.com", "name": "Rep"})
    school = elm(db)
    response = staff.get("/school/records.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    today = utcnow().strftime("%Y-%m-%d")
    assert response.headers["Content-Disposition"] == f'attachment; filename="elm-primary-ledger-{today}.csv"'
    head, rows = parse_export(response)

    verified = ledger.verify(db, school.id)
    assert verified.ok
    assert head["chain_entries"] == str(verified.entries) and head["chain_head_hash"] == verified.head_hash
    assert head["school"] == "elm-primary" and head["group"] == "all" and head["school_id"] == str(school.id)

    entries = list(db.exec(select(LedgerEntry).where(LedgerEntry.school_id == school.id).order_by(LedgerEntry.seq)))
    assert len(rows) == len(entries) == verified.entries
    person = db.exec(select(Person)).one()
    for row, entry in zip(rows, entries, strict=True):
        assert row["seq"] == str(entry.seq) and row["created_at"] == utc_iso(entry.created_at)
        for column in ("action", "channel", "entry_hash", "prev_hash", "actor", "detail"):
            assert row[column] == getattr(entry, column), column
        for column in ("person_ref", "document_kind", "document_sha256", "statement"):
            assert row[column] == (getattr(entry, column) or ""), column
        assert row["document_version"] == str(entry.document_version or "")
        if entry.person_ref:
            assert row["person_name"] == person.name == "Sam Parent" and row["child_name"] == "Amelia R."
            assert row["group_slug"] == "year-2-ash"

    # The school can recompute the whole chain from the file alone and reach the head it carries.
    running = ledger.GENESIS
    for row in rows:
        assert row["prev_hash"] == running
        running = ledger.compute_hash(running, as_entry(row, school.id))
        assert running == row["entry_hash"]
    assert running == head["chain_head_hash"]


def test_export_of_one_group_and_erased_names(staff, journey, db) -> None:
    """?group= keeps only that group's entries; an erased person's name is blank, their reference stays."""
    full_journey(journey)
    staff.submit("/school/groups/year-4-birch/moderators", {"email": "rep@example.com", "name": "Rep"})
    with session_scope() as session:
        person = session.exec(select(Person)).one()
        person.name, person.email, person.mobile, person.erased_at = None, None, None, utcnow()
        session.add(person)
    response = staff.get("/school/records.csv?group=year-4-birch")
    today = utcnow().strftime("%Y-%m-%d")
    assert f'filename="elm-primary-year-4-birch-ledger-{today}.csv"' in response.headers["Content-Disposition"]
    head, rows = parse_export(response)
    assert head["group"] == "year-4-birch"
    assert [row["action"] for row in rows] == ["moderator_appoint"]

    _, rows = parse_export(staff.get("/school/records.csv?group=year-2-ash"))
    with_person = [row for row in rows if row["person_ref"]]
    assert with_person and all(row["person_name"] == "" for row in with_person)


def test_names_that_look_like_formulas_are_defused(staff, journey) -> None:
    """A parent's name starting with = is exported with a leading apostrophe, so a spreadsheet shows it as text."""
    full_journey(journey, name="=HYPERLINK(evil)")
    _, rows = parse_export(staff.get("/school/records.csv"))
    assert {row["person_name"] for row in rows if row["person_ref"]} == {"'=HYPERLINK(evil)"}


def test_a_large_export_streams(app, staff, db) -> None:
    """Thousands of entries come as a streamed response, read in batches, every row present."""
    school = elm(db)
    with session_scope() as session:
        for n in range(1200):
            ledger.append(session, school.id, "agree", actor="staff:test", channel="cli", statement=f"I agree {n}")
    response = staff.client.get("/school/records.csv", buffered=False)
    assert response.is_streamed
    chunks = list(response.response)
    assert len(chunks) > 1  # sent as it is written, not built whole first
    response.close()
    head, rows = parse_export(staff.get("/school/records.csv"))
    assert len(rows) == int(head["chain_entries"]) == 1200
    assert rows[-1]["statement"] == "I agree 1199"


# --- The ledger check ---------------------------------------------------------------------------


def test_ledger_check_reports_an_intact_chain(staff, journey, db) -> None:
    """GET shows the button; POST checks the chain and shows the entry count and head hash."""
    full_journey(journey)
    page = staff.get("/school/ledger")
    assert page.status_code == 200 and "Check the ledger" in text_of(page)
    assert "intact" not in text_of(page)
    before = snapshot(db)
    result = staff.submit("/school/ledger")
    verified = ledger.verify(db, elm(db).id)
    assert result.status_code == 200
    assert f"The ledger is intact {verified.entries} entries" in text_of(result)
    assert verified.head_hash in text_of(result)
    assert snapshot(db) == before  # checking writes nothing


def test_ledger_check_names_the_first_broken_entry(app, staff, journey, db) -> None:
    """An entry edited behind Classgate's back is named, as `flask ledger verify` names it."""
    full_journey(journey)
    db.commit()
    agree = db.exec(select(LedgerEntry).where(LedgerEntry.action == "agree")).one()
    run_sql(app, drop_guard(app, "update"),
            f"UPDATE ledger_entry SET statement = 'I agree to nothing' WHERE id = {agree.id}")
    page = text_of(staff.submit("/school/ledger"))
    assert "The ledger is broken" in page
    assert f"entry {agree.seq} (id {agree.id})" in page and "changed after it was written" in page


def test_ledger_check_catches_a_deleted_last_entry(app, staff, journey, db) -> None:
    """Removing the newest entry leaves the chain short of its head, and the page says so."""
    full_journey(journey)
    db.commit()
    last = db.exec(select(LedgerEntry).order_by(LedgerEntry.seq.desc())).first()
    run_sql(app, drop_guard(app, "delete"), f"DELETE FROM ledger_entry WHERE id = {last.id}")
    page = text_of(staff.submit("/school/ledger"))
    assert "chain head does not fit" in page


def test_ledger_check_covers_only_this_school(app, staff, journey, other_school, db) -> None:
    """Another school's broken chain does not show up in this school's check."""
    full_journey(journey)
    with session_scope() as session:
        ledger.append(session, other_school["school_id"], "agree", actor="staff:test", channel="cli")
    other = db.exec(select(LedgerEntry).where(LedgerEntry.school_id == other_school["school_id"])).first()
    run_sql(app, drop_guard(app, "update"), f"UPDATE ledger_entry SET action = 'x' WHERE id = {other.id}")
    assert "The ledger is intact" in text_of(staff.submit("/school/ledger"))


# --- Security -----------------------------------------------------------------------------------


def test_the_ledger_check_needs_the_csrf_token(staff) -> None:
    """A POST without the page's CSRF token is refused."""
    response = staff.client.post("/school/ledger")
    assert response.status_code == 400
    assert "intact" not in text_of(response)


def test_moderators_get_404_on_every_records_page(moderator, journey, db) -> None:
    """Records, a person's record, the export and the ledger check are not there for a moderator."""
    full_journey(journey)
    membership_id = db.exec(select(Membership.id)).one()
    token = moderator.hidden_fields(moderator.get("/moderate/").get_data(as_text=True))["csrf_token"]
    for url in ("/school/records", f"/school/records/{membership_id}", "/school/records.csv",
                "/school/records.csv?group=year-2-ash", "/school/ledger"):
        assert moderator.get(url).status_code == 404, url
    assert moderator.client.post("/school/ledger", data={"csrf_token": token}).status_code == 404


def test_another_schools_person_record_is_404(staff, other_school) -> None:
    """A membership of another school is not found (the URL-map test covers it too; this names it)."""
    assert staff.get(f"/school/records/{other_school['membership_id']}").status_code == 404

