"""The staff console end to end, with the staff account `flask demo --json` prints."""

from __future__ import annotations

import csv
import io
import json
import re

from sqlmodel import select

from membership import ledger
from membership.models import LedgerEntry, LedgerHead, School

from .conftest import link_in, outbox, sign_in, text_of

CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


def test_demo_staff_import_print_publish_reagree_and_export(app, db, make_browser):
    """Import a class, print its letters, publish a material code of conduct, see who must re-agree, export."""
    demo = json.loads(app.test_cli_runner().invoke(args=["demo", "--json"]).output)
    oak = next(group for group in demo["groups"] if group["slug"] == "year-3-oak")

    # A parent joins Year 3 Oak with a demo code before anything changes.
    parent = make_browser()
    parent.submit("/join/year-3-oak", {"code": oak["codes"][0]})
    details = {"name": "Ola Parent", "relationship": "parent", "email": "ola@example.com"}
    parent.submit("/join/year-3-oak/details", details)
    parent.get(link_in(outbox(db, to="ola@example.com", kind="verify-email")[-1]))
    assert parent.submit("/join/year-3-oak/agree", {"agree_coc": "y", "acknowledge_notice": "y"}).status_code == 303

    office = make_browser()
    assert sign_in(office, demo["staff"]["email"], demo["staff"]["password"]).headers["Location"].endswith("/school/")

    # Import a class list: the codes are shown once, as printable letters.
    token = office.hidden_fields(office.get("/school/roster").get_data(as_text=True))["csrf_token"]
    upload = "\ufeffdisplay_name,group\r\nAisha K.,year-3-oak\r\n\"Ben T.\",year-3-oak  \r\n\r\n"
    result = office.client.post(
        "/school/roster/import", content_type="multipart/form-data",
        data={"csrf_token": token, "file": (io.BytesIO(upload.encode()), "class.csv")},
    )
    assert result.status_code == 200
    page = result.get_data(as_text=True)
    codes = CODE.findall(page)
    assert len(set(codes)) == 2
    assert page.count("<svg") >= 1 and "/join/year-3-oak" in page
    assert "Aisha K." in page and "Ben T." in page
    letters = office.hidden_fields(page)
    pdf = office.client.post("/school/letters.pdf", data=letters)
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert pdf.data.count(b"/Type /Page") - pdf.data.count(b"/Type /Pages") == 2

    # Publish a material new code of conduct: the parent must re-agree and is emailed a link.
    publish = office.submit("/school/policies/code_of_conduct/new", {
        "text": "Be kind, and keep to school matters.", "material": "material",
        "change_note": "Shorter and clearer.", "review_due": "",
    })
    assert publish.status_code == 303, text_of(publish)
    outstanding = text_of(office.get("/school/records?show=reagree"))
    assert "Ola Parent" in outstanding
    assert outbox(db, to="ola@example.com", kind="reagree")

    # The export matches the ledger, entry for entry, and carries the chain head.
    export = office.get("/school/records.csv")
    assert export.status_code == 200
    lines = list(csv.reader(io.StringIO(export.get_data().decode("utf-8-sig"))))
    blank = lines.index([])
    head_lines = {line[0]: line[1] for line in lines[:blank]}
    rows = [dict(zip(lines[blank + 1], line, strict=True)) for line in lines[blank + 2:]]
    db.commit()
    school_id = db.exec(select(School.id).where(School.slug == demo["school"]["slug"])).one()
    head = db.get(LedgerHead, school_id)
    assert head_lines["chain_head_hash"] == head.head_hash
    entries = db.exec(select(LedgerEntry).where(LedgerEntry.school_id == school_id).order_by(LedgerEntry.seq)).all()
    assert [row["entry_hash"] for row in rows] == [entry.entry_hash for entry in entries]
    assert ledger.verify(db, school_id).ok
