"""Policy documents: versions that never change once published, shown safely, agreed to by exact words."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from sqlmodel import select

from membership import policies, schools
from membership.db import session_scope
from membership.models import DocumentKind, LedgerEntry, Membership, PolicyVersion, School

from .conftest import text_of

SAFE_TAGS = {"p", "a", "em", "strong", "code", "pre", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
             "blockquote", "hr", "br", "img", "table", "thead", "tbody", "tr", "th", "td"}
BAD_URL = re.compile(r"^\s*(javascript|vbscript|data:text|file):", re.IGNORECASE)


class Tags(HTMLParser):
    """Every element and attribute in a piece of HTML, as a browser would see them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Note an opening tag and its attributes."""
        self.found.append((tag, attrs))


def elm_id(db) -> int:
    """The test school's id."""
    db.commit()
    return db.exec(select(School.id).where(School.slug == "elm-primary")).one()


def versions(db, school_id: int, kind: DocumentKind) -> list[PolicyVersion]:
    """Every published version of one of a school's documents, oldest first."""
    db.commit()
    return list(
        db.exec(
            select(PolicyVersion)
            .where(PolicyVersion.school_id == school_id, PolicyVersion.kind == kind)
            .order_by(PolicyVersion.number)
        )
    )


def test_new_school_has_version_1_of_each_default_document(school, db) -> None:
    """A school set up today already has a code of conduct, a data notice and a moderator notice, version 1."""
    school_id = elm_id(db)
    for kind in DocumentKind:
        [version] = versions(db, school_id, kind)
        assert version.number == 1
        assert version.text == policies.default_text(kind)
        assert version.text.strip()
        assert version.sha256 == hashlib.sha256(version.text.encode("utf-8")).hexdigest()
        assert version.material is True
        assert version.published_at.tzinfo is not None
        assert policies.current(db, school_id, kind).id == version.id


def test_publishing_a_new_version_keeps_the_old_one(school, db) -> None:
    """Publishing a revised code of conduct makes version 2; what parents agreed to as version 1 is unchanged."""
    school_id = elm_id(db)
    [old] = versions(db, school_id, DocumentKind.CODE_OF_CONDUCT)
    old_copy = (old.id, old.text, old.sha256, old.published_at)
    new_text = "Be kind.\n\nNo selling in the group.\n"
    with session_scope() as session:
        published = policies.publish(
            session, school_id, DocumentKind.CODE_OF_CONDUCT, new_text, material=True, change_note="No selling."
        )
        assert published.number == 2
    first, second = versions(db, school_id, DocumentKind.CODE_OF_CONDUCT)
    assert (first.id, first.text, first.sha256, first.published_at) == old_copy
    assert (second.number, second.text, second.change_note) == (2, new_text, "No selling.")
    assert second.sha256 == hashlib.sha256(new_text.encode("utf-8")).hexdigest()
    assert policies.current(db, school_id, DocumentKind.CODE_OF_CONDUCT).id == second.id
    # The other documents and other schools keep their own numbering.
    assert [v.number for v in versions(db, school_id, DocumentKind.DATA_NOTICE)] == [1]
    with session_scope() as session:
        other = schools.create_school(session, "rowan-academy", "Rowan Academy", "office@rowan.example")
        assert policies.current(session, other.id, DocumentKind.CODE_OF_CONDUCT).number == 1


def test_sha256_is_of_the_exact_text(school, db) -> None:
    """Two texts differing only by a trailing space or line ending get different fingerprints."""
    school_id = elm_id(db)
    with session_scope() as session:
        a = policies.publish(session, school_id, DocumentKind.DATA_NOTICE, "Notice.\n", material=False)
        b = policies.publish(session, school_id, DocumentKind.DATA_NOTICE, "Notice. \n", material=False)
        c = policies.publish(session, school_id, DocumentKind.DATA_NOTICE, "Notice.\r\n", material=False)
        assert len({a.sha256, b.sha256, c.sha256}) == 3
        assert [a.number, b.number, c.number] == [2, 3, 4]
        assert a.sha256 == hashlib.sha256(b"Notice.\n").hexdigest()


@pytest.mark.parametrize(
    "markdown, forbidden",
    [
        ("<script>alert(1)</script>", ["<script"]),
        ("Hello <script>alert(1)</script> there", ["<script"]),
        ('<img src="x" onerror="alert(1)">', ["<img"]),
        ("<img src=x onerror=alert(1)>", ["<img"]),
        ('<a href="https://evil.example" onclick="alert(1)">x</a>', ["<a href"]),
        ("<iframe src=https://evil.example></iframe>", ["<iframe"]),
        ("[x](javascript:alert(1))", ['href="javascript', "href='javascript"]),
        ("[x](JavaScript:alert(1))", ['href="javascript', 'href="JavaScript']),
        ("[x](&#106;avascript:alert(1))", ['href="javascript', 'href="&#106;']),
        ("[x](vbscript:msgbox(1))", ['href="vbscript']),
        ("[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", ['href="data:text/html']),
        ("![x](javascript:alert(1))", ['src="javascript']),
        ("<javascript:alert(1)>", ['href="javascript']),
        ('[x](https://example.com "a\\" onmouseover=\\"alert(1)")', ['" onmouseover="']),
    ],
)
def test_policy_markdown_never_passes_markup_through(markdown: str, forbidden: list[str]) -> None:
    """A policy text cannot put a script, an image handler or a javascript: link on a parent's screen."""
    html = str(policies.render(markdown))
    for needle in forbidden:
        assert needle.lower() not in html.lower(), html
    for tag, attributes in Tags(html).found:
        assert tag in SAFE_TAGS, html
        for name, value in attributes:
            assert name in {"href", "src", "alt", "title"}, html
            assert not (name in {"href", "src"} and BAD_URL.match(value or "")), html


def test_policy_markdown_still_formats() -> None:
    """Headings, lists, emphasis and ordinary links in a policy still look right."""
    html = str(policies.render("## Rules\n\n- Be **kind**\n- See [the school](https://school.example/policy)\n"))
    assert "<h2>Rules</h2>" in html
    assert "<li>Be <strong>kind</strong></li>" in html
    assert '<a href="https://school.example/policy">the school</a>' in html


def test_agree_page_shows_a_hostile_policy_as_text(school, journey, browser, db) -> None:
    """If a school's policy text contained a script, a parent reading it sees the words, not a running script."""
    with session_scope() as session:
        policies.publish(
            session, elm_id(db), DocumentKind.CODE_OF_CONDUCT,
            "Be kind.\n\n<script>alert(1)</script>\n\n[click](javascript:alert(1))\n\n<img src=x onerror=alert(1)>\n",
            material=True,
        )
    journey.code()
    journey.details()
    journey.verify()
    page = browser.get("/join/year-2-ash/agree")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<script>alert(1)" not in html
    assert 'href="javascript' not in html.lower()
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "version 2" in text_of(page)


@pytest.mark.parametrize(
    "kind, opening",
    [
        (DocumentKind.CODE_OF_CONDUCT, "I agree to follow the Class Group Code of Conduct (version 3, 10 Jan 2026)"),
        (DocumentKind.DATA_NOTICE, "I have read the data notice (version 3, 10 Jan 2026)"),
        (DocumentKind.MODERATOR_NOTICE, "I have read the moderator notice (version 3, 10 Jan 2026)"),
    ],
)
def test_agreement_statement_names_version_and_date(kind: DocumentKind, opening: str) -> None:
    """The sentence a parent ticks says which version, and of what date, they agreed to."""
    version = PolicyVersion(
        school_id=1, kind=kind, number=3, text="x", sha256="0" * 64,
        published_at=datetime(2026, 1, 10, 9, 30, tzinfo=UTC),
    )
    statement = policies.agreement_statement(version)
    assert statement.startswith(opening)
    if kind == DocumentKind.DATA_NOTICE:
        assert "moderators are data controllers" in statement
    assert "consent" not in statement.lower()


def test_ledger_keeps_the_exact_statement_and_fingerprint(school, journey, db) -> None:
    """What the ledger records is word for word what the parent ticked, with the text's SHA-256."""
    journey.code()
    journey.details()
    journey.verify()
    agree_page = text_of(journey.browser.get("/join/year-2-ash/agree"))
    journey.agree()
    db.commit()
    for action, kind in (("agree", DocumentKind.CODE_OF_CONDUCT), ("acknowledge", DocumentKind.DATA_NOTICE)):
        entry = db.exec(select(LedgerEntry).where(LedgerEntry.action == action)).one()
        version = policies.current(db, entry.school_id, kind)
        assert entry.statement == policies.agreement_statement(version)
        assert entry.statement in agree_page
        assert (entry.document_kind, entry.document_version, entry.document_version_id) == (
            kind.value, 1, version.id,
        )
        assert entry.document_sha256 == version.sha256


@pytest.mark.parametrize(("kind", "material", "flagged"), [
    (DocumentKind.CODE_OF_CONDUCT, True, True),
    (DocumentKind.DATA_NOTICE, True, True),
    (DocumentKind.CODE_OF_CONDUCT, False, False),
    (DocumentKind.MODERATOR_NOTICE, True, False),
])
def test_material_change_asks_active_members_to_agree_again(journey, db, kind, material, flagged) -> None:
    """A material change to what members agreed to flags every active member; minor changes do not."""
    journey.through_agree()
    db.commit()
    school_id = db.exec(select(School.id)).one()
    with session_scope() as session:
        policies.publish(session, school_id, kind, "Changed text.", material=material)
    db.commit()
    assert db.exec(select(Membership)).one().needs_reagree is flagged
