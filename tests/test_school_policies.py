"""Staff publish new versions of the documents; a material change asks members (or moderators) again."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from itsdangerous import TimestampSigner
from sqlmodel import select

from membership import journey as steps
from membership import moderation, policies, schools
from membership.db import session_scope
from membership.models import DocumentKind, LedgerEntry, Membership, PolicyVersion, Status, User

from .conftest import Browser, error_summary, link_in, outbox, sign_in, snapshot, text_of

NOTE = "Added a rule about photos of other people's children."


def school_id(db) -> int:
    """The test school's id."""
    db.commit()
    return schools.school_by_slug(db, "elm-primary").id


def current_text(db, kind: str = "code_of_conduct") -> str:
    """The text of a document's current version."""
    return policies.current(db, school_id(db), DocumentKind(kind)).text


def edited(text: str) -> str:
    """The text with its first non-heading line removed and a new rule added at the end."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    del lines[first]
    return policies.normalise("\n".join(lines) + "\n\n- Do not share photos of other people's children.\n")


def publish(staff: Browser, kind: str = "code_of_conduct", text: str | None = None, **fields):
    """Fill in and send the 'publish a new version' form."""
    data = {"material": "material", "change_note": NOTE, "review_due": "", **fields}
    if text is not None:
        data["text"] = text
    return staff.submit(f"/school/policies/{kind}/new", data)


def versions(db, kind: str = "code_of_conduct") -> list[PolicyVersion]:
    """Every version of one of the school's documents, oldest first."""
    db.commit()
    return list(db.exec(
        select(PolicyVersion)
        .where(PolicyVersion.school_id == school_id(db), PolicyVersion.kind == kind)
        .order_by(PolicyVersion.number)
    ))


def ledger(db, action: str) -> list[LedgerEntry]:
    """The school's ledger entries for one action, oldest first."""
    db.commit()
    return list(db.exec(select(LedgerEntry).where(LedgerEntry.action == action).order_by(LedgerEntry.seq)))


def memberships(db) -> list[Membership]:
    """Every membership, oldest first, freshly read."""
    db.commit()
    return list(db.exec(select(Membership).order_by(Membership.id)))


@pytest.fixture
def members(journey, db) -> list[Membership]:
    """Two members in the chat's open group and one parent still waiting for a moderator in another."""
    journey.through_agree(email="sam@example.com")
    journey.through_agree(email="alex@example.com", name="Alex Carer")
    journey.through_agree("year-4-birch", email="kim@example.com", name="Kim Waiting")
    rows = memberships(db)
    assert [m.status for m in rows] == [Status.INVITED, Status.INVITED, Status.PENDING_APPROVAL]
    return rows


# --- Publishing -----------------------------------------------------------------------------------


def test_a_material_version_asks_every_active_member_again_by_email(staff, members, db):
    """Every active member is flagged and emailed once; a parent still waiting is not; the ledger notes the publish."""
    text = edited(current_text(db))
    response = publish(staff, text=text, review_due=(date.today() + timedelta(days=365)).isoformat())
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/school/policies/code_of_conduct/2")
    page = text_of(staff.get(response.headers["Location"]))
    assert "Version 2 of the Class Group Code of Conduct is published. 2 members have been emailed" in page

    new = versions(db)[-1]
    assert (new.number, new.text, new.material, new.change_note) == (2, text, True, NOTE)
    assert new.sha256 == policies.sha256_of(text)
    assert [m.needs_reagree for m in memberships(db)] == [True, True, False]
    mails = outbox(db, kind="reagree")
    assert sorted(m.to_addr for m in mails) == ["alex@example.com", "sam@example.com"]
    assert all("Class Group Code of Conduct" in m.body_text and NOTE in m.body_text for m in mails)
    assert outbox(db, to="kim@example.com", kind="reagree") == []

    [entry] = ledger(db, "publish_policy")
    staff_id = db.exec(select(User.id).where(User.email == "office@elm.example")).one()
    assert (entry.actor, entry.channel) == (f"user:{staff_id}", "staff")
    assert (entry.document_kind, entry.document_version, entry.document_sha256) == ("code_of_conduct", 2, new.sha256)


def test_reagreeing_through_the_emailed_link_records_the_new_versions(staff, members, db, make_browser):
    """GET shows the new text and changes nothing; POST writes agree + acknowledge for the new versions."""
    publish(staff, text=edited(current_text(db)))
    link = link_in(outbox(db, to="sam@example.com", kind="reagree")[-1])
    phone = make_browser()
    before = snapshot(db)
    page = phone.get(link)
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    html = page.get_data(as_text=True)
    assert "Do not share photos of other people" in text_of(page)
    assert "I agree to follow the Class Group Code of Conduct (version 2," in text_of(page)
    assert "checked" not in html  # both statements start unticked
    assert snapshot(db) == before and memberships(db)[0].needs_reagree

    response = phone.submit(link, {"agree_coc": "y", "acknowledge_notice": "y"})
    assert response.status_code == 303
    assert "Thank you" in text_of(phone.get(response.headers["Location"]))

    sam = memberships(db)[0]
    coc, notice = steps.current_documents(db, school_id(db))
    assert not sam.needs_reagree
    assert (sam.coc_version_id, sam.notice_version_id) == (coc.id, notice.id)
    agree, acknowledge = [e for e in ledger(db, "agree") + ledger(db, "acknowledge") if e.channel == "email-link"]
    assert (agree.membership_id, agree.document_version, agree.document_sha256) == (sam.id, 2, coc.sha256)
    assert agree.statement == policies.agreement_statement(coc)
    assert (acknowledge.document_version_id, acknowledge.document_sha256) == (notice.id, notice.sha256)
    assert acknowledge.statement == policies.agreement_statement(notice)
    assert memberships(db)[1].needs_reagree  # Alex has not re-agreed yet

    # Opening or pressing the link again is harmless: it says so and records nothing more.
    after = snapshot(db)
    assert "You have already done this" in text_of(phone.get(link))
    token = Browser.hidden_fields(phone.get("/join/year-2-ash").get_data(as_text=True))["csrf_token"]
    again = phone.client.post(Browser.path(link), data={
        "csrf_token": token, "coc_version": coc.id, "notice_version": notice.id, "agree_coc": "y",
        "acknowledge_notice": "y",
    })
    assert "You have already done this" in text_of(again)
    assert snapshot(db) == after


def test_reagreeing_needs_both_statements_ticked(staff, members, db, make_browser):
    """One tick is not enough: the page says what is missing and nothing is recorded."""
    publish(staff, "data_notice", text=edited(current_text(db, "data_notice")))
    link = link_in(outbox(db, to="sam@example.com", kind="reagree")[-1])
    phone = make_browser()
    before = snapshot(db)
    response = phone.submit(link, {"agree_coc": "y"})
    assert response.status_code == 400
    assert error_summary(response) == [("#acknowledge_notice", "Tick the box to confirm you have read the data notice")]
    assert snapshot(db) == before and memberships(db)[0].needs_reagree


def test_a_version_published_while_reading_is_not_agreed_to_unseen(staff, members, db, make_browser):
    """Versions changed between opening the page and pressing the button: shown again, nothing recorded."""
    publish(staff, text=edited(current_text(db)))
    link = link_in(outbox(db, to="sam@example.com", kind="reagree")[-1])
    phone = make_browser()
    phone.get(link)
    hidden = Browser.hidden_fields(phone.last.get_data(as_text=True))
    with session_scope() as session:
        policies.publish(session, school_id(db), DocumentKind.CODE_OF_CONDUCT, "Be kind.\n", material=False)
    before = snapshot(db)
    response = phone.client.post(Browser.path(link), data={**hidden, "agree_coc": "y", "acknowledge_notice": "y"})
    assert response.status_code == 303
    assert "The documents were updated while you were reading" in text_of(phone.get(response.headers["Location"]))
    assert snapshot(db) == before and memberships(db)[0].needs_reagree


@pytest.mark.parametrize("kind", ["code_of_conduct", "data_notice", "moderator_notice"])
def test_a_minor_version_asks_nobody_again(staff, members, moderator, db, kind):
    """A minor version flags nobody and emails nobody, members or moderators."""
    response = publish(staff, kind, text=edited(current_text(db, kind)), material="minor", change_note="Typo fixed.")
    assert response.status_code == 303
    assert "It is a minor change, so nobody is asked to agree again" in text_of(staff.get(response.headers["Location"]))
    assert [v.material for v in versions(db, kind)] == [True, False]
    assert not any(m.needs_reagree for m in memberships(db))
    assert outbox(db, kind="reagree") == [] and outbox(db, kind="moderator-notice") == []
    assert moderator.get("/moderate/").status_code == 200  # not sent to the notice again


def test_a_material_moderator_notice_asks_moderators_again(staff, members, moderator, db):
    """Every active moderator is emailed and must accept the new notice before anything else; members are not asked."""
    response = publish(staff, "moderator_notice", text=edited(current_text(db, "moderator_notice")))
    assert "1 moderator has been emailed" in text_of(staff.get(response.headers["Location"]))
    [message] = outbox(db, kind="moderator-notice")
    assert message.to_addr == "rep@elm.example" and NOTE in message.body_text
    assert link_in(message).endswith("/moderate/notice")
    rep = db.exec(select(User).where(User.email == "rep@elm.example")).one()
    assert moderation.needs_notice(db, rep)
    assert moderator.get("/moderate/").headers["Location"].endswith("/moderate/notice")
    assert not any(m.needs_reagree for m in memberships(db)) and outbox(db, kind="reagree") == []


def test_publishing_the_same_text_is_refused(staff, members, db):
    """An untouched text, even sent back with a browser's CRLF line ends, is not a new version."""
    before = snapshot(db)
    text = current_text(db).replace("\n", "\r\n")
    response = publish(staff, text=text)
    assert response.status_code == 400
    assert error_summary(response) == [("#text", "Nothing changed: the text is the same as version 1")]
    assert len(versions(db)) == 1 and snapshot(db) == before


TOMORROW = (date.today() + timedelta(days=2)).isoformat()


@pytest.mark.parametrize(
    ("fields", "target", "message"),
    [
        ({"text": "   \r\n "}, "#text", "Enter the text of the document"),
        ({"material": ""}, "#material-0", "Select whether this is a material or a minor change"),
        ({"material": "major"}, "#material-0", "Select whether this is a material or a minor change"),
        ({"change_note": "  "}, "#change_note", "Enter a change note saying what changed"),
        ({"change_note": "x" * 501}, "#change_note", "The change note must be 500 characters or fewer"),
        ({"review_due": date.today().isoformat()}, "#review_due", "The review date must be in the future"),
        ({"review_due": "2020-01-01"}, "#review_due", "The review date must be in the future"),
        ({"review_due": "31/02/2027"}, "#review_due", "Enter the review date as a real date, for example 2027-07-31"),
    ],
)
def test_a_refused_version_changes_nothing(staff, members, db, fields, target, message):
    """Each wrong field is named on the page; no version, flag, email or ledger entry results."""
    before = snapshot(db)
    data = {"text": edited(current_text(db)), **fields}
    response = publish(staff, **{k: v for k, v in data.items() if k != "text"}, text=data["text"])
    assert response.status_code == 400
    assert (target, message) in error_summary(response)
    assert len(versions(db)) == 1 and snapshot(db) == before
    assert not any(m.needs_reagree for m in memberships(db))


def test_a_good_review_date_is_kept(staff, school, db):
    """A future review date is stored with the version and shown in the list."""
    publish(staff, text="# Rules\n\nBe kind.\n", review_due=TOMORROW)
    assert versions(db)[-1].review_due == date.fromisoformat(TOMORROW)
    assert "Review due" in text_of(staff.get("/school/policies"))


def test_a_version_published_meanwhile_is_not_overwritten_unseen(staff, school, db):
    """The form remembers which version it copied; if another is published meanwhile, staff are told."""
    page = staff.get("/school/policies/code_of_conduct/new")
    hidden = Browser.hidden_fields(page.get_data(as_text=True))
    assert hidden["based_on"] == "1"
    with session_scope() as session:
        policies.publish(session, school_id(db), DocumentKind.CODE_OF_CONDUCT, "Someone else's.\n", material=False)
    response = staff.client.post("/school/policies/code_of_conduct/new", data={
        **hidden, "text": "Mine.\n", "material": "minor", "change_note": "Mine.",
    })
    assert response.status_code == 400
    assert "Version 2 was published while you were editing" in text_of(response)
    assert len(versions(db)) == 2


# --- Reading: list, history, a version, the diff --------------------------------------------------


def test_the_list_shows_each_document_with_its_review_date(staff, school, db):
    """Three documents, their current version, and an overdue review flagged in words."""
    with session_scope() as session:
        policies.publish(session, school_id(db), DocumentKind.DATA_NOTICE, "Old.\n", material=False,
                         review_due=date.today() - timedelta(days=1))
    page = text_of(staff.get("/school/policies"))
    for title in ("Class Group Code of Conduct", "Data notice", "Moderator notice"):
        assert title in page
    assert "Data notice Review overdue Current version version 2" in page
    assert page.count("Review overdue") == 1


def test_history_and_diff_show_what_changed_escaped(staff, school, db):
    """History lists every version; the diff labels the added and removed lines and never runs the text's HTML."""
    old = current_text(db)
    removed = next(line for line in old.splitlines() if line.strip() and not line.startswith("#"))
    new = edited(old) + "\n<script>alert('x')</script>\n"
    publish(staff, text=new, material="minor", change_note="Photos <b>rule</b>.")

    history = staff.get("/school/policies/code_of_conduct")
    page = text_of(history)
    assert "Version 2 Minor Current" in page and "Version 1 Material" in page
    assert "Photos <b>rule</b>." in page and "<b>rule</b>" not in history.get_data(as_text=True)

    diff = staff.get("/school/policies/code_of_conduct/2/diff")
    html = diff.get_data(as_text=True)
    assert diff.status_code == 200
    assert f"<del>{_escaped(removed)}</del>" in html
    assert "<ins>- Do not share photos of other people&#39;s children.</ins>" in html
    assert "Added" in text_of(diff) and "Removed" in text_of(diff)  # labelled in words, not colour alone
    assert "<script>" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def _escaped(text: str) -> str:
    """Text as Jinja escapes it."""
    from markupsafe import escape

    return str(escape(text))


def test_a_version_is_shown_rendered_with_its_sha256_and_no_raw_html(staff, school, db):
    """Markdown is formatted; raw HTML in it is shown as text, never as markup."""
    text = "# Rules\n\nBe **kind**.\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n"
    publish(staff, text=text)
    page = staff.get("/school/policies/code_of_conduct/2")
    html = page.get_data(as_text=True)
    assert "<strong>kind</strong>" in html
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert policies.sha256_of(text) in html


@pytest.mark.parametrize(
    "url",
    [
        "/school/policies/terms_of_use",
        "/school/policies/terms_of_use/1",
        "/school/policies/terms_of_use/new",
        "/school/policies/code_of_conduct/9",
        "/school/policies/code_of_conduct/9/diff",
        "/school/policies/code_of_conduct/1/diff",
    ],
)
def test_unknown_documents_and_versions_are_not_found(staff, school, url):
    """An unknown kind or version number answers 404."""
    assert staff.get(url).status_code == 404


def test_another_schools_versions_are_not_reachable(staff, other_school, db):
    """Version numbers address the signed-in school's own documents only."""
    with session_scope() as session:
        policies.publish(session, other_school["school_id"], DocumentKind.CODE_OF_CONDUCT, "Pine only.\n",
                         material=False)
    assert staff.get("/school/policies/code_of_conduct/2").status_code == 404
    assert "Pine only." not in text_of(staff.get("/school/policies/code_of_conduct"))


# --- The magic link's bad cases ------------------------------------------------------------------


def test_a_tampered_or_expired_link_is_refused(staff, members, db, make_browser, monkeypatch):
    """A changed token is not valid; an old one has expired; neither records anything."""
    publish(staff, text=edited(current_text(db)))
    link = link_in(outbox(db, to="sam@example.com", kind="reagree")[-1])
    phone = make_browser()
    before = snapshot(db)
    tampered = phone.get(link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb"))
    assert tampered.status_code == 404 and "This link is not valid" in text_of(tampered)
    forged = phone.get("/join/reagree/" + steps.tokens.issue("verify-email", {"m": members[0].id}))
    assert forged.status_code == 404  # a token for another purpose is not a re-agree link
    later = TimestampSigner.get_timestamp(TimestampSigner("x")) + 31 * 24 * 3600
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    expired = phone.get(link)
    assert expired.status_code == 410 and "This link has expired" in text_of(expired)
    assert snapshot(db) == before and memberships(db)[0].needs_reagree


def test_a_member_who_has_left_gets_a_clear_page(staff, members, db, make_browser):
    """A link for a membership that has ended says so and records nothing."""
    publish(staff, text=edited(current_text(db)))
    link = link_in(outbox(db, to="sam@example.com", kind="reagree")[-1])
    with session_scope() as session:
        sam = session.get(Membership, members[0].id)
        sam.status = Status.LEFT
        session.add(sam)
    before = snapshot(db)
    response = make_browser().get(link)
    assert response.status_code == 410 and "You are no longer a member of this group" in text_of(response)
    assert snapshot(db) == before


def test_reagree_domain_refuses_an_ended_membership(app, members, db):
    """The domain rule holds without the page: an ended membership cannot re-agree."""
    with session_scope() as session:
        sam = session.get(Membership, members[0].id)
        sam.status, sam.needs_reagree = Status.REMOVED, True
        session.add(sam)
    with session_scope() as session:
        sam = session.get(Membership, members[0].id)
        coc, notice = steps.current_documents(session, school_id(db))
        with pytest.raises(steps.NoLongerMember):
            steps.reagree(session, sam, coc.id, notice.id)


# --- CSRF and who may see the staff pages ---------------------------------------------------------


def test_every_post_needs_a_csrf_token(staff, members, db, make_browser):
    """Publishing and re-agreeing without a CSRF token are refused and change nothing."""
    publish(staff, text=edited(current_text(db)))
    link = link_in(outbox(db, to="sam@example.com", kind="reagree")[-1])
    phone = make_browser()
    hidden = Browser.hidden_fields(phone.get(link).get_data(as_text=True))
    before = snapshot(db)
    staff_post = staff.client.post("/school/policies/data_notice/new", data={
        "text": "New.\n", "material": "material", "change_note": "New.",
    })
    parent_post = phone.client.post(Browser.path(link), data={
        "coc_version": hidden["coc_version"], "notice_version": hidden["notice_version"],
        "agree_coc": "y", "acknowledge_notice": "y",
    })
    assert staff_post.status_code == 400 and parent_post.status_code == 400
    assert snapshot(db) == before and len(versions(db, "data_notice")) == 1
    assert memberships(db)[0].needs_reagree


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/school/policies"),
        ("GET", "/school/policies/code_of_conduct"),
        ("GET", "/school/policies/code_of_conduct/1"),
        ("GET", "/school/policies/code_of_conduct/new"),
        ("POST", "/school/policies/code_of_conduct/new"),
    ],
)
def test_moderators_do_not_find_the_staff_pages(moderator, db, method, url):
    """A moderator, even with a valid CSRF token, is told the page is not there, and nothing is published."""
    token = Browser.hidden_fields(moderator.get("/moderate/notice").get_data(as_text=True)).get("csrf_token")
    data = {"csrf_token": token, "text": "x", "material": "material", "change_note": "x"} if method == "POST" else None
    assert moderator.client.open(url, method=method, data=data).status_code == 404
    assert len(versions(db)) == 1


def test_the_documents_section_is_in_the_staff_menu(staff):
    """The staff console's menu links to the documents, marked current on their pages."""
    html = staff.get("/school/policies").get_data(as_text=True)
    assert 'aria-current="page" href="/school/policies"' in html


def test_signing_in_again_after_the_notice_changed(make_account, make_browser, staff, db):
    """A moderator who signs in after a material notice is sent to the notice first."""
    make_account("rep2@elm.example")
    publish(staff, "moderator_notice", text=edited(current_text(db, "moderator_notice")))
    phone = make_browser()
    response = sign_in(phone, "rep2@elm.example")
    assert response.status_code == 303
    assert phone.get("/moderate/").headers["Location"].endswith("/moderate/notice")
