"""Policy documents: publishing versions, finding the current one, and showing it safely."""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import func, update
from sqlmodel import Session, select

from . import ledger, mail
from .formatting import UK
from .models import DocumentKind, Group, Membership, Person, PolicyVersion, Role, School, Status, User
from .urls import external_url
from .validation import fits_id, has_control

TEXTS = Path(__file__).parent / "texts"

# Where a policy's links and images may point: web pages, email addresses and phone numbers, or
# places on the same site (no scheme at all).
LINK_SCHEMES = ("http", "https", "mailto", "tel")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):", re.IGNORECASE)


class _PolicyMarkdown(MarkdownIt):
    """CommonMark with raw HTML off, and links only to the schemes in LINK_SCHEMES.

    markdown-it's own check refuses javascript:, vbscript: and file:, but lets data: images
    through, as links too; a policy has no use for any scheme beyond these four.
    """

    def validateLink(self, url: str) -> bool:  # markdown-it's name for the hook
        """True for a link a policy may hold (markdown-it has already decoded entities and normalised it)."""
        scheme = _SCHEME.match(url.strip())
        return scheme is None or scheme.group(1).lower() in LINK_SCHEMES


# A policy text can format, never inject markup.
_markdown = _PolicyMarkdown("commonmark", {"html": False, "linkify": False}).enable("table")


class NoPolicy(Exception):
    """The school has not published this document yet."""


@lru_cache(maxsize=64)
def render(text: str) -> Markup:
    """Render a policy's Markdown to HTML with raw HTML disabled.

    Published texts never change, and every parent on the agree page reads the same two, so
    each distinct text is rendered once per process.
    """
    html = _markdown.render(text)
    # Raw HTML is off and links are checked (see _PolicyMarkdown), so markdown-it has escaped everything typed.
    return Markup(html)  # noqa: S704  # nosec B704  # markdown-it's own output, raw HTML off


def sha256_of(text: str) -> str:
    """The SHA-256 of the exact text, as recorded with every agreement."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_text(kind: DocumentKind) -> str:
    """Classgate's default wording for a document."""
    return (TEXTS / f"{kind.value}.md").read_text(encoding="utf-8")


def publish(
    session: Session,
    school_id: int,
    kind: DocumentKind,
    text: str,
    *,
    material: bool,
    change_note: str = "",
    review_due: date | None = None,
) -> PolicyVersion:
    """Publish the next version of a document; earlier versions are never changed."""
    number = session.exec(
        select(func.coalesce(func.max(PolicyVersion.number), 0)).where(
            PolicyVersion.school_id == school_id, PolicyVersion.kind == kind
        )
    ).one()
    version = PolicyVersion(
        school_id=school_id,
        kind=kind,
        number=number + 1,
        text=text,
        sha256=sha256_of(text),
        material=material,
        change_note=change_note,
        review_due=review_due,
    )
    session.add(version)
    session.flush()
    if material and kind in MEMBER_DOCUMENTS:
        _require_reagreement(session, school_id)
    return version


# Documents every member agrees to; a material change to either asks them all to agree again.
MEMBER_DOCUMENTS = (DocumentKind.CODE_OF_CONDUCT, DocumentKind.DATA_NOTICE)


# Members in the chat (or holding a link into it): the people a material change asks again.
ACTIVE = (Status.APPROVED, Status.INVITED, Status.LINK_USED)


def _require_reagreement(session: Session, school_id: int) -> int:
    """Flag every active member of the school's groups as needing to re-agree; return how many."""
    groups = select(Group.id).where(Group.school_id == school_id)
    result = session.exec(
        update(Membership)
        .where(Membership.group_id.in_(groups), Membership.status.in_(ACTIVE), Membership.needs_reagree.is_(False))
        .values(needs_reagree=True)
    )
    return result.rowcount


def publish_defaults(session: Session, school_id: int, review_due: date | None = None) -> None:
    """Give a new school version 1 of each document in Classgate's default wording."""
    for kind in DocumentKind:
        publish(
            session, school_id, kind, default_text(kind), material=True,
            change_note="First version (Classgate default).", review_due=review_due,
        )


def current(session: Session, school_id: int, kind: DocumentKind) -> PolicyVersion:
    """The newest published version of a document."""
    version = session.exec(
        select(PolicyVersion)
        .where(PolicyVersion.school_id == school_id, PolicyVersion.kind == kind)
        .order_by(PolicyVersion.number.desc())
        .limit(1)
    ).first()
    if version is None:
        raise NoPolicy(kind)
    return version


def agreement_statement(version: PolicyVersion) -> str:
    """The exact sentence a parent ticks to agree to or acknowledge a version."""
    published = f"{version.published_at.day} {version.published_at:%b %Y}"
    if version.kind == DocumentKind.CODE_OF_CONDUCT:
        return f"I agree to follow the Class Group Code of Conduct (version {version.number}, {published})"
    if version.kind == DocumentKind.DATA_NOTICE:
        return (
            f"I have read the data notice (version {version.number}, {published}), including that "
            "the group's moderators are data controllers for what is shared in the group"
        )
    return (
        f"I have read the moderator notice (version {version.number}, {published}) and accept my "
        "duties as a moderator and data controller for what is shared in the group"
    )


# --- Publishing from the staff console ---------------------------------------------------------

TEXT_MAX = 100_000
NOTE_MAX = 500


class PublishRefused(Exception):
    """What staff asked to publish cannot be published; errors maps each form field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass
class Published:
    """A version staff published and how many people were emailed about it."""

    version: PolicyVersion
    emailed: int


def uk_today() -> date:
    """Today's date at the school (review dates are UK calendar dates)."""
    return datetime.now(UK).date()


def normalise(text: str) -> str:
    """A text as it is stored: Unix line ends, no blank lines around it, one final newline.

    Browsers send a textarea back with CRLF line ends, so without this an untouched text
    would look changed, and its SHA-256 would differ from the version it copies.
    """
    body = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\n").rstrip()
    return f"{body}\n" if body else ""


def publish_from_staff(
    session: Session,
    school: School,
    user: User,
    kind: DocumentKind,
    text: str,
    material: bool | None,
    change_note: str,
    review_due: date | None,
    *,
    based_on: int | None = None,
) -> Published:
    """Check and publish a version written by staff, record it in the ledger and email who must act.

    A material code of conduct or data notice emails every active member a link to agree again;
    a material moderator notice emails every active moderator. A minor version emails nobody.
    Raises PublishRefused with a message per field, having changed nothing.
    """
    if user.role != Role.STAFF or not user.active or user.school_id != school.id:
        raise PermissionError("only the school's own staff publish its documents")
    # One publisher at a time per school: two staff cannot take the same number, or both pass
    # the "nothing changed" check with the same text.
    session.exec(select(School.id).where(School.id == school.id).with_for_update(key_share=True)).one()
    kind = DocumentKind(kind)
    text, note = normalise(text or ""), (change_note or "").strip()
    try:
        latest = current(session, school.id, kind)
    except NoPolicy:
        latest = None
    errors: dict[str, str] = {}
    if not text:
        errors["text"] = "Enter the text of the document"
    elif has_control(text, line_breaks=True):
        errors["text"] = "The text must not contain control characters or text-direction overrides"
    elif len(text) > TEXT_MAX:
        errors["text"] = f"The text must be {TEXT_MAX:,} characters or fewer"
    elif latest is not None and based_on is not None and latest.number != based_on:
        errors["text"] = (
            f"Version {latest.number} was published while you were editing. Read it, then make your changes again"
        )
    elif latest is not None and text == normalise(latest.text):
        errors["text"] = f"Nothing changed: the text is the same as version {latest.number}"
    if material is None:
        errors["material"] = "Select whether this is a material or a minor change"
    if not note:
        errors["change_note"] = "Enter a change note saying what changed"
    elif has_control(note, line_breaks=True):
        errors["change_note"] = "The change note must only include letters, numbers and punctuation"
    elif len(note) > NOTE_MAX:
        errors["change_note"] = f"The change note must be {NOTE_MAX} characters or fewer"
    if review_due is not None and review_due <= uk_today():
        errors["review_due"] = "The review date must be in the future"
    if errors:
        raise PublishRefused(errors)
    version = publish(session, school.id, kind, text, material=material, change_note=note, review_due=review_due)
    emailed = _tell_who_must_act(session, school, version)
    ledger.append(
        session, school.id, "publish_policy", actor=f"user:{user.id}", channel="staff", document=version,
        detail={"material": material, "emailed": emailed},
    )
    return Published(version, emailed)


def _tell_who_must_act(session: Session, school: School, version: PolicyVersion) -> int:
    """Queue the emails a material version calls for; return how many."""
    if not version.material:
        return 0
    if version.kind in MEMBER_DOCUMENTS:
        # journey imports this module for the current versions, so it is imported here instead.
        from . import journey

        rows = session.exec(
            select(Membership, Person)
            .join(Person, Person.id == Membership.person_id)
            .join(Group, Group.id == Membership.group_id)
            .where(Group.school_id == school.id, Membership.status.in_(ACTIVE))
            .order_by(Membership.id)
        ).all()
        return sum(journey.ask_to_reagree(session, membership, version) for membership, _ in rows)
    moderators = session.exec(
        select(User)
        .where(User.school_id == school.id, User.role == Role.MODERATOR, User.active.is_(True))
        .order_by(User.id)
    ).all()
    for moderator in moderators:
        mail.queue(
            session, moderator.email, "moderator_notice_changed", kind="moderator-notice",
            school=school, moderator=moderator, version=version, link=external_url("moderate.notice"),
        )
    return len(moderators)


# --- History and differences -------------------------------------------------------------------


def history(session: Session, school_id: int, kind: DocumentKind) -> list[PolicyVersion]:
    """Every published version of a document, newest first."""
    return list(
        session.exec(
            select(PolicyVersion)
            .where(PolicyVersion.school_id == school_id, PolicyVersion.kind == kind)
            .order_by(PolicyVersion.number.desc())
        ).all()
    )


def version_of(session: Session, school_id: int, kind: DocumentKind, number: int) -> PolicyVersion:
    """One numbered version of a school's document, or NoPolicy."""
    if not fits_id(number):
        raise NoPolicy(kind)
    version = session.exec(
        select(PolicyVersion).where(
            PolicyVersion.school_id == school_id, PolicyVersion.kind == kind, PolicyVersion.number == number
        )
    ).first()
    if version is None:
        raise NoPolicy(kind)
    return version


@dataclass
class DiffLine:
    """One line of a difference: added, removed or unchanged (context), with its line numbers."""

    change: str  # "added", "removed" or "same"
    old_number: int | None
    new_number: int | None
    text: str


def diff(old: str, new: str, context: int = 3) -> list[list[DiffLine]]:
    """The lines that differ between two texts, in hunks with a few unchanged lines around each."""
    before, after = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    hunks = []
    for opcodes in matcher.get_grouped_opcodes(context):
        lines: list[DiffLine] = []
        for tag, i1, i2, j1, j2 in opcodes:
            if tag == "equal":
                lines += [DiffLine("same", i1 + k + 1, j1 + k + 1, before[i1 + k]) for k in range(i2 - i1)]
                continue
            lines += [DiffLine("removed", i + 1, None, before[i]) for i in range(i1, i2)]
            lines += [DiffLine("added", None, j + 1, after[j]) for j in range(j1, j2)]
        hunks.append(lines)
    return hunks
