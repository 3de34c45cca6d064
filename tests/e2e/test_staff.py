"""School staff import a class list, publish a new code of conduct and download the acceptance records."""

from __future__ import annotations

import csv
import re

from membership.models import Role
from membership.records import EXPORT_COLUMNS

from .journeys import enter_code, flash, heading, press, sign_in
from .screens import DESKTOP, PHONE, expect

OFFICE = "office@elm.example"
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
GOOD_FILE = b"display_name,group\nNoah T.,year-2-ash\nFreya M.,year-2-ash\n"
BAD_FILE = b"display_name,group\nNoah T.,year-2-ash\n,year-2-ash\nFreya M.,year-9-nowhere\n"
NEW_RULE = "\n\n## Photos\n\nDo not share photos of other people's children.\n"


def csv_file(content: bytes) -> dict:
    """A file as the upload field is given it."""
    return {"name": "class-list.csv", "mimeType": "text/csv", "buffer": content}


def test_staff_import_a_class_list_publish_a_new_code_of_conduct_and_export_the_records(
    open_screen, make_account, sign_up, javascript
):
    """Each step as the office sees it; the new codes work for a parent and the download holds the ledger.

    With JavaScript the office works at desktop width; without it, on a phone, so each page is seen at both.
    """
    make_account(OFFICE, Role.STAFF, (), accept_notice=False)
    sign_up("sam@example.com")  # a member, whose agreements are in the records
    office = open_screen("staff", DESKTOP if javascript else PHONE)
    page = office.page
    sign_in(office, OFFICE, "school dashboard")
    expect(heading(office)).to_have_text("Elm Primary School")

    # A class list with two bad lines is refused whole, each line named.
    office.follow(page.get_by_role("link", name="Class lists and codes", exact=True), "class lists")
    page.get_by_label("CSV file").set_input_files(csv_file(BAD_FILE))
    press(office, "Check and import", "class list refused", 400)
    expect(page.locator(".error-summary")).to_contain_text("The file was not imported")
    problems = page.locator("#problems li")
    expect(problems).to_have_count(2)
    expect(problems.first).to_contain_text("Line 3")
    expect(problems.last).to_contain_text("Line 4")

    page.get_by_label("CSV file").set_input_files(csv_file(GOOD_FILE))
    press(office, "Check and import", "letters with the new codes")
    expect(heading(office)).to_have_text("2 children added")
    letters = page.locator(".letter")
    expect(letters).to_have_count(2)
    codes = page.locator(".letter__code").all_inner_texts()
    assert len(codes) == 2 and all(CODE.match(code) for code in codes), codes

    # The code on Noah's letter lets a parent in.
    parent = open_screen("parent", PHONE)
    enter_code(parent, "year-2-ash", codes[0])
    expect(heading(parent)).to_have_text("Your details")

    office.follow(page.get_by_role("link", name="Back to the class lists"), "class lists after the import")
    for child in ("Noah T.", "Freya M."):
        expect(page.locator(".summary div").filter(has_text=child)).to_contain_text("Code active")

    # A material change to the code of conduct asks the member to agree again.
    office.follow(page.get_by_role("link", name="Documents", exact=True), "documents")
    publish = page.get_by_role("link", name=re.compile("^Publish a new version of the Class Group Code of Conduct"))
    office.follow(publish, "publish a new version")
    press(office, "Publish version 2", "publish, nothing changed", 400)
    summary = page.locator(".error-summary")
    expect(summary.get_by_role("link")).to_have_count(3)
    expect(summary).to_contain_text("the text is the same as version 1")
    text = page.get_by_label("Text of the new version")
    text.fill(text.input_value() + NEW_RULE)
    page.get_by_label(re.compile("^Material")).check()
    page.get_by_label("Change note").fill("A new rule about photos of children.")
    press(office, "Publish version 2", "version 2 published")
    expect(flash(office)).to_contain_text("Version 2 of the Class Group Code of Conduct is published.")
    expect(flash(office)).to_contain_text("1 member has been emailed to read it and agree again.")
    expect(page.get_by_text("Do not share photos of other people's children.")).to_be_visible()

    office.follow(page.get_by_role("link", name="Records", exact=True), "acceptance records")
    sam = page.get_by_role("row").filter(has_text="Sam Parent")
    expect(sam).to_contain_text("Must re-agree")
    with page.expect_download() as started:
        office.activate(page.get_by_role("link", name="Download the ledger (CSV)"))
    download = started.value
    assert re.fullmatch(r"elm-primary-ledger-\d{4}-\d{2}-\d{2}\.csv", download.suggested_filename)
    saved = office.folder / download.suggested_filename
    download.save_as(saved)
    rows = list(csv.reader(saved.read_text(encoding="utf-8-sig").splitlines()))
    assert rows[0] == ["Classgate acceptance ledger", "Elm Primary School"]
    head = dict(row for row in rows[:7] if len(row) == 2)
    assert re.fullmatch(r"[0-9a-f]{64}", head["chain_head_hash"])
    header = rows.index(list(EXPORT_COLUMNS))
    entries = [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in rows[header + 1:]]
    assert len(entries) == int(head["chain_entries"])
    assert entries[-1]["entry_hash"] == head["chain_head_hash"]
    agreed = [e for e in entries if e["person_name"] == "Sam Parent" and e["document_kind"] == "code_of_conduct"]
    assert agreed and agreed[0]["document_version"] == "1"

    # The same head hash is what the ledger check finds, and Sam's own record lists the agreement.
    office.follow(page.get_by_role("link", name="Ledger check", exact=True), "ledger check")
    press(office, "Check the ledger", "ledger checked")
    expect(page.get_by_role("heading", name="The ledger is intact")).to_be_visible()
    expect(page.locator(".summary")).to_contain_text(head["chain_head_hash"])
    office.follow(page.get_by_role("link", name="Records", exact=True), "acceptance records again")
    office.follow(page.get_by_role("link", name="Sam Parent"), "a parent's record")
    expect(heading(office)).to_have_text("Sam Parent")
    expect(page.get_by_role("table").filter(has_text="Every ledger entry")).to_contain_text("I agree to follow")
