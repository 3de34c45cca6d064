"""A parent's copy of their data, and erasing their details."""

from __future__ import annotations

import json
import re

from sqlmodel import select

from membership import ledger, schools
from membership.models import Membership, OutboxMessage, ParentSignIn, Person, PolicyVersion, Status

from .conftest import csrf_token, error_summary, link_in, outbox, text_of
from .test_me import EMAIL, join, sign_in
from .test_me_groups import OTHER

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def download(phone) -> dict:
    """GET /me/data.json and check it is a dated JSON attachment; returns the parsed file."""
    response = phone.get("/me/data.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="classgate-my-data-\d{4}-\d{2}-\d{2}\.json"', disposition)
    assert response.headers["Cache-Control"] == "no-store"
    return json.loads(response.get_data(as_text=True))


def test_my_data_holds_their_details_agreements_and_emails_and_nobody_elses(make_browser, make_code, db):
    """The file has the person record, memberships, every agreement with its SHA-256, invites and emails."""
    theirs = join(make_browser(), db, make_code("year-2-ash", "Dan E."), **OTHER)
    phone = make_browser()
    mine = join(phone, db, make_code("year-2-ash", "Amelia R."))
    sign_in(phone, db)
    data = download(phone)

    assert data["email"] == EMAIL
    assert [(p["name"], p["email"], p["mobile"]) for p in data["people"]] == [("Sam Parent", EMAIL, "+447911123456")]
    assert [(m["group"], m["school"], m["child"], m["relationship"], m["status"], m["verified_by"])
            for m in data["memberships"]] == [
        ("Year 2 Ash", "Elm Primary School", "Amelia R.", "parent", "invited", "code")
    ]
    agreements = [e for e in data["ledger"] if e["action"] in ("agree", "acknowledge")]
    versions = {v.id: v for v in db.exec(select(PolicyVersion))}
    assert [(e["document_kind"], e["document_version"]) for e in agreements] == [
        ("code_of_conduct", 1), ("data_notice", 1)
    ]
    for entry in agreements:
        assert entry["document_sha256"] in {v.sha256 for v in versions.values()}
        assert entry["statement"].startswith(("I agree to follow", "I have read the data notice"))
        assert entry["channel"] == "web" and len(entry["entry_hash"]) == 64
        assert ISO_UTC.match(entry["created_at"])
    assert {(d["kind"], d["version"], d["sha256"]) for d in data["documents_agreed"]} == {
        (e["document_kind"], e["document_version"], e["document_sha256"]) for e in agreements
    }
    assert [i["used_at"] for i in data["invites"]] == [None]
    assert all(ISO_UTC.match(i["issued_at"]) and ISO_UTC.match(i["expires_at"]) for i in data["invites"])
    subjects = [m["subject"] for m in data["emails"]]
    assert any("Confirm your email" in s for s in subjects)
    assert any("/join/verify/" in m["body"] for m in data["emails"])
    assert all(m["to"] == EMAIL for m in data["emails"])
    assert data["sign_ins"] and all(ISO_UTC.match(s["created_at"]) for s in data["sign_ins"])

    text = json.dumps(data)
    assert "Robin Other" not in text and OTHER["email"] not in text and "Dan E." not in text
    other_ref = db.get(Person, theirs.person_id).ref
    assert other_ref not in text
    assert "nonce" not in text
    assert db.get(Membership, mine.id).status == Status.INVITED


def test_my_groups_links_to_the_download(make_browser, make_code, db):
    """The download is offered from the groups page."""
    phone = make_browser()
    join(phone, db, make_code())
    sign_in(phone, db)
    assert 'href="/me/data.json"' in phone.get("/me/").get_data(as_text=True)


# --- Erasing ----------------------------------------------------------------------------------


def test_the_erase_page_explains_and_needs_the_box_ticked(make_browser, make_code, db):
    """GET explains what happens; POST without 'I understand' is refused and erases nothing."""
    phone = make_browser()
    join(phone, db, make_code())
    sign_in(phone, db)
    page = phone.get("/me/erase")
    text = text_of(page)
    assert page.status_code == 200
    for words in ("erased from every class group, at every school", "You leave the group you are still in: Year 2 Ash",
                  "anonymous reference number", "This cannot be undone", "as a new person", "download your data"):
        assert words in text, words
    response = phone.submit("/me/erase", {})
    assert response.status_code == 400
    assert error_summary(response) == [("#understand", "Tick the box to confirm you understand what will happen")]
    db.commit()
    assert db.exec(select(Person).where(Person.email == EMAIL)).one().erased_at is None


def test_erasing_removes_their_details_everywhere_and_keeps_the_ledger_sound(
    make_browser, make_code, db, staff, make_moderator
):
    """Name, email and mobile go from every record and email copy; the ledger still verifies; they can rejoin."""
    make_moderator("rep@elm.example", "year-2-ash")
    phone = make_browser()
    ash = join(phone, db, make_code("year-2-ash", "Amelia R."))
    birch = join(phone, db, make_code("year-4-birch", "Ben T."), slug="year-4-birch")
    assert phone.submit(link_in(outbox(db, to=EMAIL, kind="invite")[-1])).status_code == 303  # into the chat
    sign_in(phone, db)
    assert "Sam Parent" in staff.get("/school/records.csv").get_data(as_text=True)
    refs = [p.ref for p in db.exec(select(Person).where(Person.email == EMAIL))]

    response = phone.submit("/me/erase", {"understand": "y"})
    assert response.status_code == 200
    assert "Your details have been erased" in text_of(response)

    db.commit()
    people = db.exec(select(Person).where(Person.ref.in_(refs))).all()
    assert people and all((p.name, p.email, p.mobile) == (None, None, None) and p.erased_at for p in people)
    assert db.exec(select(Person).where(Person.email == EMAIL)).all() == []
    assert {db.get(Membership, m.id).status for m in (ash, birch)} == {Status.LEFT}
    copies = db.exec(select(OutboxMessage).where(OutboxMessage.person_id.in_([p.id for p in people]))).all()
    assert copies and all(c.to_addr == "" and c.subject == "(erased)" and "Sam" not in c.body_text for c in copies)
    assert all(EMAIL not in c.to_addr and EMAIL not in c.body_text for c in db.exec(select(OutboxMessage)))
    assert db.exec(select(ParentSignIn)).all() == []
    school = schools.school_by_slug(db, "elm-primary")
    assert ledger.verify(db, school.id).ok
    assert len(outbox(db, to="rep@elm.example", kind="chat-removal")) == 1  # they had used the link

    export = staff.get("/school/records.csv").get_data(as_text=True)
    assert "Sam Parent" not in export and EMAIL not in export and "+447911123456" not in export

    # Signed out, and the pages ask for a link again.
    assert phone.get("/me/data.json").status_code == 303
    assert "Signed in as" not in text_of(phone.get("/me/"))

    # A new start: the same address joins again as a new person with a fresh code.
    again = join(make_browser(), db, make_code("year-2-ash", "Amelia R."))
    assert again.status == Status.INVITED
    new_person = db.get(Person, again.person_id)
    assert new_person.ref not in refs and new_person.name == "Sam Parent"


def test_an_erased_address_gets_no_sign_in_link(make_browser, make_code, db):
    """After erasure nothing is known about the address, so no link is sent (and the page is the same)."""
    phone = make_browser()
    join(phone, db, make_code())
    sign_in(phone, db)
    phone.submit("/me/erase", {"understand": "y"})
    sent = len(outbox(db, kind="parent-sign-in"))
    stranger = make_browser()
    response = stranger.client.post("/me/", data={"email": EMAIL, "csrf_token": csrf_token(stranger, "/me/")})
    assert response.status_code == 303
    assert len(outbox(db, kind="parent-sign-in")) == sent
