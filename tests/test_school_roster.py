"""Staff class lists: import, codes shown once, letters (HTML and PDF), new codes, uses, invitations and blocks."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from membership import codes
from membership.models import CarerBlock, CarerInvitation, Child, EnrolmentCode, LedgerEntry, Membership

from .conftest import BASE_URL, DETAILS, error_summary, link_in, outbox, snapshot, text_of

CODE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}")
LETTER = re.compile(r'<article class="letter".*?</article>', re.S)
REFUSED = "That code was not accepted"


# --- helpers -----------------------------------------------------------------------------------------


def count(db, model, *where) -> int:
    """How many rows a table has now."""
    db.commit()
    return db.exec(select(func.count()).select_from(model).where(*where)).one()


def token_of(browser, url: str = "/school/roster") -> str:
    """A CSRF token from a staff page."""
    return browser.hidden_fields(browser.get(url).get_data(as_text=True))["csrf_token"]


def upload(staff, content: str | bytes, filename: str = "class.csv"):
    """Upload a roster file as the school office would."""
    data = content.encode() if isinstance(content, str) else content
    return staff.client.post(
        "/school/roster/import", content_type="multipart/form-data",
        data={"csrf_token": token_of(staff), "file": (io.BytesIO(data), filename)},
    )


def letters_of(response) -> dict[str, dict]:
    """Each letter on a results page by child: its code, group, join URL and whether it has a QR code."""
    found = {}
    for html in LETTER.findall(response.get_data(as_text=True)):
        child = re.search(r'<strong class="letter__child">([^<]*)</strong>', html).group(1)
        found[child] = {
            "code": re.search(r'<p class="letter__code">([^<]*)</p>', html).group(1),
            "url": re.search(r'<p class="letter__url">([^<]*)</p>', html).group(1),
            "qr": "<svg" in html and "<path" in html,
            "html": html,
        }
    return found


def code_works(browser, slug: str, code: str) -> bool:
    """Type a code on a group's join page; True when it lets the parent on to their details."""
    response = browser.submit(f"/join/{slug}", {"code": code})
    if response.status_code == 303:
        return True
    assert response.status_code == 400 and REFUSED in text_of(response)
    return False


def join_with_code(make_browser, slug: str, code: str, email: str):
    """A new carer's phone: code, then details; returns the details response (or None if the code was refused)."""
    phone = make_browser()
    if not code_works(phone, slug, code):
        return None
    return phone.submit(f"/join/{slug}/details", {**DETAILS, "email": email, "mobile": ""})


def child_id(db, name: str) -> int:
    """A child's id by display name."""
    db.commit()
    return db.exec(select(Child.id).where(Child.display_name == name)).one()


def pdf_pages(data: bytes) -> int:
    """How many pages a PDF has (every page object says /Type /Page)."""
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", data))


GOOD = (
    "display_name,group,carer_emails\n"
    "Amelia R.,year-2-ash,amelia.mum@example.com\n"
    "Noah T.,year-2-ash,\n"
    "Freya M.,year-4-birch,\n"
)


# --- import ------------------------------------------------------------------------------------------


def test_roster_page_lists_children_by_group_with_their_code_state(staff, make_code, make_browser, db):
    """The class lists show each child under their group with uses taken of allowed, linking to their page."""
    code = make_code("year-2-ash", "Amelia R.")
    make_code("year-4-birch", "Freya M.", uses_allowed=3)
    assert join_with_code(make_browser, "year-2-ash", code, "mum@example.com").status_code == 302
    response = staff.get("/school/roster")
    assert response.status_code == 200
    page = text_of(response)
    assert re.search(r"Year 2 Ash 1 child Amelia R\. Code active 1 of 2 uses taken", page)
    assert re.search(r"Year 4 Birch 1 child Freya M\. Code active 0 of 3 uses taken", page)
    assert f'href="/school/children/{child_id(db, "Amelia R.")}"' in response.get_data(as_text=True)
    assert 'aria-current="page" href="/school/roster"' in response.get_data(as_text=True)


def test_a_good_file_imports_and_shows_each_code_once_and_they_work(staff, db, make_browser):
    """Every child gets a code shown on the results page, which works on the join page and is never shown again."""
    response = upload(staff, GOOD)
    assert response.status_code == 200, text_of(response)
    page = text_of(response)
    assert "3 children added" in page and "Print letters" in page
    assert "1 personal invitation has been emailed" in page
    letters = letters_of(response)
    assert sorted(letters) == ["Amelia R.", "Freya M.", "Noah T."]
    assert all(CODE.fullmatch(letter["code"]) for letter in letters.values())
    assert code_works(make_browser(), "year-2-ash", letters["Amelia R."]["code"])
    assert code_works(make_browser(), "year-4-birch", letters["Freya M."]["code"])
    assert not code_works(make_browser(), "year-2-ash", letters["Freya M."]["code"])
    # Only the HMAC is kept, so no later page can show a code again.
    stored = " ".join(db.exec(select(EnrolmentCode.code_hmac)).all())
    later = staff.get("/school/roster").get_data(as_text=True) + staff.get(
        f"/school/children/{child_id(db, 'Amelia R.')}").get_data(as_text=True)
    for letter in letters.values():
        assert letter["code"].replace("-", "") not in stored
        assert letter["code"] not in later
    assert [m.to_addr for m in outbox(db, kind="carer-invitation")] == ["amelia.mum@example.com"]


def test_the_results_page_is_the_print_view_with_one_letter_per_child(staff):
    """Each letter has the school, group, child, code, the external join URL and a QR code, with print CSS."""
    response = upload(staff, GOOD)
    html = response.get_data(as_text=True)
    letters = letters_of(response)
    assert len(letters) == 3
    for name, slug, group in (("Amelia R.", "year-2-ash", "Year 2 Ash"), ("Freya M.", "year-4-birch", "Year 4 Birch")):
        letter = letters[name]
        assert letter["url"] == f"{BASE_URL}/join/{slug}"
        assert letter["qr"]
        assert "Elm Primary School" in letter["html"] and group in letter["html"]
        assert "voluntary" in letter["html"] and "up to 2 of you can use it" in letter["html"]
    assert '<link rel="stylesheet" href="/static/letters.css">' in html
    # CSP allows no inline style: nothing on the page relies on one.
    assert "<style" not in html and " style=" not in html
    assert "script" not in html.lower()
    assert "no-store" in response.headers["Cache-Control"]


def test_print_css_puts_each_letter_on_its_own_a4_page(app):
    """The print stylesheet sets A4, breaks after each letter and hides the rest of the page."""
    css = (Path(app.static_folder) / "letters.css").read_text()
    assert "size: A4" in css and "break-after: page" in css
    assert re.search(r"@media print \{[^}]*\.header[^}]*display: none", css, re.S)


def test_the_qr_code_encodes_the_join_url():
    """The QR code on a letter is segno's encoding of the group's join URL."""
    import segno

    from membership import letters

    url = f"{BASE_URL}/join/year-2-ash"
    svg = str(letters.qr_svg(url))
    assert svg.startswith('<svg role="img"') and "<title>" in svg
    expected = segno.make(url, error="m").svg_inline(scale=1, border=4, omitsize=True,
                                                      svgclass="letter__qr-svg", lineclass=None,
                                                      title="QR code that opens the join page")
    assert svg.replace(' role="img"', "") == expected


def test_the_pdf_has_one_page_per_child(staff):
    """The PDF download from the results page has one A4 page per letter."""
    response = upload(staff, GOOD)
    token = staff.hidden_fields(response.get_data(as_text=True))
    pdf = staff.client.post("/school/letters.pdf", data=token)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert "attachment" in pdf.headers["Content-Disposition"]
    assert pdf.data.startswith(b"%PDF") and pdf_pages(pdf.data) == 3
    assert b"/MediaBox [ 0 0 595.2756 841.8898 ]" in pdf.data  # A4


def test_the_pdf_prints_only_codes_that_still_work(staff, db):
    """A code replaced since the import is left out of the PDF; the token is bound to its member of staff."""
    response = upload(staff, GOOD)
    fields = staff.hidden_fields(response.get_data(as_text=True))
    token = staff.hidden_fields(staff.get(f"/school/children/{child_id(db, 'Noah T.')}").get_data(as_text=True))
    staff.client.post(f"/school/children/{child_id(db, 'Noah T.')}/code", data=token)
    pdf = staff.client.post("/school/letters.pdf", data=fields)
    assert pdf.status_code == 200 and pdf_pages(pdf.data) == 2
    forged = staff.client.post("/school/letters.pdf", data={**fields, "letters": fields["letters"][:-3] + "abc"})
    assert forged.status_code == 400


def test_bad_rows_are_each_named_and_nothing_is_imported(staff, db, make_code):
    """One bad row stops the whole file: a 400 page lists every bad line with its problem, and nothing changes."""
    make_code("year-2-ash", "Oliver S.")
    before = snapshot(db)
    children = count(db, Child)
    response = upload(
        staff,
        "display_name,group,carer_emails\n"               # line 1
        "Amelia R.,year-2-ash,\n"                          # line 2: fine
        "Noah Thompson,year-2-ash,\n"                      # line 3: full surname
        "Amelia R,year-2-ash,\n"                           # line 4: duplicate in the group
        f"{'Maximilian' * 5} Q.,year-2-ash,\n"            # line 5: over length
        "Isla K.,year-9-nowhere,\n"                        # line 6: unknown group
        "Zoe K.,year-2-ash,not-an-email\n"                 # line 7: bad email
        "Oliver S.,year-2-ash,\n"                          # line 8: already in the group
        "Leo W.,,\n"                                       # line 9: no group
        f"Ava B.,year-2-ash,{'x' * 1300}@example.com\n"   # line 10: row over length
        "Amelia R.,year-4-birch,\n",                       # line 11: fine (another group)
    )
    assert response.status_code == 400
    page = text_of(response)
    assert "The file was not imported" in page and "Nothing has been added" in page
    problems = dict(re.findall(r"Line (\d+): (.*?)(?= Line \d+:| Add children)", page))
    assert sorted(map(int, problems)) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "only the first letter of their surname" in problems["3"]
    assert "appears twice in Year 2 Ash (also on line 2)" in problems["4"]
    assert "40 characters or fewer" in problems["5"]
    assert "There is no group 'year-9-nowhere'" in problems["6"]
    assert "not a valid email address" in problems["7"]
    assert "already has a child called Oliver S." in problems["8"]
    assert "Enter Leo W.'s group" in problems["9"]
    assert "longer than 1200 characters" in problems["10"]
    assert error_summary(response) == [("#file", "8 problems in the file")]
    assert not CODE.search(response.get_data(as_text=True))
    assert count(db, Child) == children and snapshot(db) == before


def test_excel_files_import_cleanly(staff, db):
    """A 'CSV UTF-8' from Excel (BOM, quotes, CRLF, blank lines, trailing spaces) imports every child."""
    content = (
        "\ufeff\"display_name\",\"group\",\"carer_emails\"\r\n"
        "\r\n"
        "\"Amelia R. \",\"year-2-ash \",\" amelia.mum@example.com; amelia.dad@example.com \"\r\n"
        "Zoë O.  , year-2-ash ,\r\n"
        ",,\r\n"
        "\"Mary-Jane K.\",\"year-4-birch\",\"\"\r\n"
        "\r\n"
    ).encode()
    response = upload(staff, content)
    assert response.status_code == 200, text_of(response)
    assert sorted(letters_of(response)) == ["Amelia R.", "Mary-Jane K.", "Zoë O."]
    invited = {m.to_addr for m in outbox(db, kind="carer-invitation")}
    assert invited == {"amelia.mum@example.com", "amelia.dad@example.com"}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "Line 1: The file is empty"),
        (b"display_name\nAmelia R.\n", "Line 1: Add a group column"),
        (b"display_name,group\n\n", "Line 1: The file has no children in it"),
        ("display_name,group\nZoë K.,year-2-ash\n".encode("cp1252"), "save it as ‘CSV UTF-8’"),
        (b'display_name,group\nAmelia R.,year-2-ash\n"' + b"a" * 140_000 + b"\n", "Line 3: This line cannot be read"),
        (b"display_name,group\nNo\x00ah T.,year-2-ash\n", "Line 2: The child's name must only include letters"),
    ],
)
def test_files_that_cannot_be_used_are_explained(staff, db, content: bytes, message: str):
    """Empty files, no group column, no children, not UTF-8, or not CSV: a clear 400 and nothing imported."""
    response = upload(staff, content)
    assert response.status_code == 400
    assert message in text_of(response)
    assert count(db, Child) == 0


def test_no_file_chosen(staff):
    """Pressing import without a file asks for one."""
    response = staff.client.post("/school/roster/import", data={"csrf_token": token_of(staff)},
                                 content_type="multipart/form-data")
    assert response.status_code == 400
    assert error_summary(response) == [("#file", "Choose a CSV file to upload")]


def test_a_10000_child_file_imports_in_reasonable_time(staff, db, make_browser):
    """A whole trust's list of 10,000 children imports in one go, each with a working code and letter."""
    rows = ["display_name,group"]
    for number in range(10_000):
        first = "".join(chr(ord("a") + int(d)) for d in f"{number:05d}").capitalize()
        rows.append(f"{first} {chr(ord('A') + number % 26)}.,{'year-2-ash' if number % 2 else 'year-4-birch'}")
    started = time.monotonic()
    response = upload(staff, "\n".join(rows) + "\n")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, text_of(response)[:500]
    assert elapsed < 30, f"import took {elapsed:.1f}s"
    assert count(db, Child) == 10_000
    assert count(db, EnrolmentCode, EnrolmentCode.revoked_at.is_(None)) == 10_000
    html = response.get_data(as_text=True)
    assert html.count('<article class="letter"') == 10_000
    last = letters_of(response)[rows[-1].split(",")[0]]
    assert code_works(make_browser(), "year-2-ash", last["code"])


# --- one child ------------------------------------------------------------------------------------------


@pytest.fixture
def amelia(make_child) -> tuple[int, str]:
    """A child in Year 2 Ash with the code on her letter."""
    return make_child("year-2-ash", "Amelia R.")


def post(staff, url: str, child: int, **data):
    """POST a child-page form with a valid CSRF token."""
    return staff.client.post(url, data={"csrf_token": token_of(staff, f"/school/children/{child}"), **data})


def ledger_rows(db, action: str) -> list[LedgerEntry]:
    """The ledger entries with one action."""
    db.commit()
    return list(db.exec(select(LedgerEntry).where(LedgerEntry.action == action)).all())


def test_a_new_code_stops_the_old_one_at_once(staff, amelia, make_browser, db):
    """Making a new code shows it once with its letter; the old code is refused, even mid-journey."""
    child, old = amelia
    halfway = make_browser()
    assert code_works(halfway, "year-2-ash", old)
    response = post(staff, f"/school/children/{child}/code", child)
    assert response.status_code == 200
    [(name, letter)] = letters_of(response).items()
    assert name == "Amelia R." and letter["qr"] and CODE.fullmatch(letter["code"])
    assert "New code for Amelia R." in text_of(response)
    assert not code_works(make_browser(), "year-2-ash", old)
    # Someone who typed the old code a moment ago is turned back when they give their details.
    refused = halfway.submit("/join/year-2-ash/details", DETAILS)
    assert refused.status_code == 303 and refused.headers["Location"].endswith("/join/year-2-ash")
    assert code_works(make_browser(), "year-2-ash", letter["code"])
    pdf = staff.client.post("/school/letters.pdf", data=staff.hidden_fields(response.get_data(as_text=True)))
    assert pdf_pages(pdf.data) == 1
    [entry] = ledger_rows(db, "code_regenerate")
    assert entry.actor.startswith("user:") and entry.channel == "staff" and entry.child_id == child


def test_raising_uses_lets_a_third_carer_join(staff, amelia, make_browser, db):
    """Two carers use the code; a third is refused until staff allow three."""
    child, code = amelia
    for email in ("one@example.com", "two@example.com"):
        assert join_with_code(make_browser, "year-2-ash", code, email).status_code == 302
    assert join_with_code(make_browser, "year-2-ash", code, "three@example.com") is None
    response = post(staff, f"/school/children/{child}/uses", child, uses="3")
    assert response.status_code == 303
    assert "3 carers can now use Amelia R.'s code" in text_of(staff.get(response.headers["Location"]))
    assert join_with_code(make_browser, "year-2-ash", code, "three@example.com").status_code == 302
    [entry] = ledger_rows(db, "code_uses_set")
    assert json.loads(entry.detail)["from"] == 2 and json.loads(entry.detail)["to"] == 3


@pytest.mark.parametrize(
    "uses, message",
    [("0", "from 1 to 10"), ("11", "from 1 to 10"), ("two", "from 1 to 10"), ("", "from 1 to 10"),
     ("1", "2 carers have already used this code: enter 2 or more")],
)
def test_uses_must_be_1_to_10_and_not_below_those_taken(staff, amelia, make_browser, db, uses, message):
    """Uses outside 1–10, or fewer than carers who already used the code, are refused and change nothing."""
    child, code = amelia
    for email in ("one@example.com", "two@example.com"):
        join_with_code(make_browser, "year-2-ash", code, email)
    response = post(staff, f"/school/children/{child}/uses", child, uses=uses)
    assert response.status_code == 400
    assert [target for target, _ in error_summary(response)] == ["#uses"]
    assert message in error_summary(response)[0][1]
    assert db.exec(select(EnrolmentCode.uses_allowed)).one() == 2
    assert ledger_rows(db, "code_uses_set") == []


def test_a_blocked_carer_cannot_join_with_the_code(staff, amelia, make_browser, db):
    """A blocked email is refused at the details step, told only to contact the office; the other carer joins."""
    child, code = amelia
    response = post(staff, f"/school/children/{child}/blocks", child, email="Dad@Example.com", reason="Court order")
    assert response.status_code == 303
    assert "dad@example.com can no longer join through Amelia R." in text_of(staff.get(response.headers["Location"]))
    before = snapshot(db)
    refused = join_with_code(make_browser, "year-2-ash", code, "dad@example.com")
    assert refused.status_code == 403
    page = text_of(refused)
    assert "contact the Elm Primary School office" in page
    assert "court" not in page.lower() and "block" not in page.lower()
    assert snapshot(db) == before  # nothing stored, no use of the code taken
    assert join_with_code(make_browser, "year-2-ash", code, "mum@example.com").status_code == 302
    [entry] = ledger_rows(db, "carer_block")
    assert entry.actor.startswith("user:") and entry.channel == "staff"
    assert "dad@example.com" not in entry.detail.lower()
    assert json.loads(entry.detail)["email_sha256"] == hashlib.sha256(b"dad@example.com").hexdigest()


def test_a_blocked_carer_cannot_join_with_a_personal_invitation(staff, amelia, make_browser, db):
    """Blocking cancels the carer's invitation; one opened before the block is refused at the details step."""
    child, _ = amelia
    assert post(staff, f"/school/children/{child}/invitations", child,
                emails="dad@example.com\nmum@example.com").status_code == 303
    links = {m.to_addr: link_in(m) for m in outbox(db, kind="carer-invitation")}
    assert sorted(links) == ["dad@example.com", "mum@example.com"]
    early = make_browser()
    assert early.get(links["dad@example.com"]).status_code == 302  # opened before the block
    post(staff, f"/school/children/{child}/blocks", child, email="dad@example.com", reason="Court order")
    before = snapshot(db)
    refused = early.submit("/join/year-2-ash/details", {**DETAILS, "email": "ignored@example.com"})
    assert refused.status_code == 403 and "contact the Elm Primary School office" in text_of(refused)
    assert snapshot(db) == before
    late = make_browser().get(links["dad@example.com"])
    assert late.status_code == 410 and "cancelled" in text_of(late)
    mum = make_browser()
    assert mum.get(links["mum@example.com"]).status_code == 302
    assert mum.submit("/join/year-2-ash/details", {**DETAILS, "email": "mum@example.com"}).status_code == 302
    db.commit()
    assert db.exec(select(Membership.verified_by)).all() == ["invitation"]
    # A blocked address cannot be invited again until the block is lifted.
    again = post(staff, f"/school/children/{child}/invitations", child, emails="dad@example.com")
    assert again.status_code == 400 and "blocked for Amelia R." in text_of(again)


def test_lifting_a_block_lets_the_carer_join(staff, amelia, make_browser, db):
    """After the block is lifted the same email joins with the code; both actions are in the ledger."""
    child, code = amelia
    post(staff, f"/school/children/{child}/blocks", child, email="dad@example.com", reason="Court order")
    assert join_with_code(make_browser, "year-2-ash", code, "dad@example.com").status_code == 403
    block_id = db.exec(select(CarerBlock.id)).one()
    lifted = post(staff, f"/school/children/{child}/blocks/lift", child, block_id=str(block_id))
    assert lifted.status_code == 303
    assert join_with_code(make_browser, "year-2-ash", code, "dad@example.com").status_code == 302
    [entry] = ledger_rows(db, "carer_block_lift")
    assert json.loads(entry.detail) == {"block_id": block_id,
                                        "email_sha256": hashlib.sha256(b"dad@example.com").hexdigest()}
    again = post(staff, f"/school/children/{child}/blocks/lift", child, block_id=str(block_id))
    assert again.status_code == 303 and "already been lifted" in text_of(staff.get(again.headers["Location"]))


@pytest.mark.parametrize(
    "data, target",
    [({"email": "not-an-email", "reason": "Court order"}, "#email"),
     ({"email": "dad@example.com", "reason": "  "}, "#reason"),
     ({"email": "dad@example.com", "reason": "x" * 201}, "#reason")],
)
def test_a_block_needs_an_email_and_a_reason(staff, amelia, db, data, target):
    """A block without a valid email or a reason is refused with the error by the field."""
    child, _ = amelia
    response = post(staff, f"/school/children/{child}/blocks", child, **data)
    assert response.status_code == 400
    assert [t for t, _ in error_summary(response)] == [target]
    assert count(db, CarerBlock) == 0


def test_the_child_page_shows_code_invitations_blocks_and_carers(staff, amelia, make_browser, db):
    """The child's page shows the code's uses, invitations sent, blocks with their reason, and who joined."""
    child, code = amelia
    join_with_code(make_browser, "year-2-ash", code, "mum@example.com")
    post(staff, f"/school/children/{child}/invitations", child, emails="gran@example.com")
    post(staff, f"/school/children/{child}/blocks", child, email="dad@example.com", reason="Court order 3 March")
    page = text_of(staff.get(f"/school/children/{child}"))
    assert "Uses 1 of 2 taken" in page
    assert "gran@example.com Sent, not used yet" in page
    assert "dad@example.com Blocked since" in page and "Court order 3 March" in page
    assert "Sam Parent Parent, details given" in page


def test_sending_a_new_invitation_cancels_the_earlier_one(staff, amelia, make_browser, db):
    """Inviting the same carer again sends a new link; the earlier link stops working."""
    child, _ = amelia
    post(staff, f"/school/children/{child}/invitations", child, emails="mum@example.com")
    post(staff, f"/school/children/{child}/invitations", child, emails="mum@example.com")
    first, second = (link_in(m) for m in outbox(db, kind="carer-invitation"))
    assert make_browser().get(first).status_code == 410
    assert make_browser().get(second).status_code == 302
    assert count(db, CarerInvitation, CarerInvitation.revoked_at.is_(None)) == 1


# --- CSRF and isolation ---------------------------------------------------------------------------------


def test_every_post_without_a_csrf_token_is_refused(staff, amelia, db):
    """No roster action happens without the page's CSRF token."""
    child, _ = amelia
    post(staff, f"/school/children/{child}/blocks", child, email="dad@example.com", reason="Court order")
    block_id = db.exec(select(CarerBlock.id)).one()
    before = snapshot(db)
    blocks = count(db, CarerBlock, CarerBlock.lifted_at.is_(None))
    attempts = [
        ("/school/roster/import", {"file": (io.BytesIO(GOOD.encode()), "class.csv")}),
        ("/school/letters.pdf", {"letters": "x"}),
        (f"/school/children/{child}/code", {}),
        (f"/school/children/{child}/uses", {"uses": "5"}),
        (f"/school/children/{child}/invitations", {"emails": "gran@example.com"}),
        (f"/school/children/{child}/blocks", {"email": "uncle@example.com", "reason": "Order"}),
        (f"/school/children/{child}/blocks/lift", {"block_id": str(block_id)}),
    ]
    for url, data in attempts:
        response = staff.client.post(url, data=data, content_type="multipart/form-data")
        assert response.status_code == 400, url
        assert not CODE.search(response.get_data(as_text=True)), url
    assert snapshot(db) == before
    assert count(db, CarerBlock, CarerBlock.lifted_at.is_(None)) == blocks
    assert count(db, Child) == 1


def test_another_schools_child_is_not_found(staff, other_school, db):
    """Another school's child page and actions answer 404 (the URL-map test covers every route too)."""
    other = other_school["child_id"]
    assert staff.get(f"/school/children/{other}").status_code == 404
    token = token_of(staff)
    for action in ("code", "uses", "invitations", "blocks", "blocks/lift"):
        assert staff.client.post(f"/school/children/{other}/{action}", data={"csrf_token": token}).status_code == 404


def test_a_file_cannot_put_children_in_another_schools_group(staff, other_school, db):
    """Naming another school's group in the file is an unknown group."""
    response = upload(staff, f"display_name,group\nAmelia R.,{other_school['slug']}\n")
    assert response.status_code == 400 and "There is no group 'year-1-pine'" in text_of(response)


def test_letters_of_another_member_of_staff_cannot_be_downloaded(staff, make_account, make_browser, db):
    """A letters token only works for the member of staff it was made for."""
    from membership.models import Role

    from .conftest import sign_in

    fields = staff.hidden_fields(upload(staff, GOOD).get_data(as_text=True))
    make_account("head@elm.example", Role.STAFF, (), accept_notice=False)
    colleague = make_browser()
    sign_in(colleague, "head@elm.example")
    response = colleague.client.post("/school/letters.pdf", data={**fields, "csrf_token": token_of(colleague)})
    assert response.status_code == 400


def test_printed_codes_use_every_letter_of_the_alphabet_evenly() -> None:
    """Codes are 12 letters from the 32 that cannot be misread, each about equally likely (none left out)."""
    drawn = [codes.generate() for _ in range(4000)]
    assert len(set(drawn)) == len(drawn)
    assert all(len(code) == codes.CODE_LENGTH and set(code) <= set(codes.ALPHABET) for code in drawn)
    letters = Counter("".join(drawn))
    expected = len(drawn) * codes.CODE_LENGTH / len(codes.ALPHABET)  # 1,500 of each
    assert set(letters) == set(codes.ALPHABET)
    assert all(abs(count - expected) < expected * 0.15 for count in letters.values()), letters
