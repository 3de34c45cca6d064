"""Policy documents: publishing versions, finding the current one, and showing it safely."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import func, update
from sqlmodel import Session, select

from .models import DocumentKind, Group, Membership, PolicyVersion, Status

TEXTS = Path(__file__).parent / "texts"

# CommonMark with raw HTML switched off: a policy text can format, never inject markup.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


class NoPolicy(Exception):
    """The school has not published this document yet."""


def render(text: str) -> Markup:
    """Render a policy's Markdown to HTML with raw HTML disabled."""
    return Markup(_markdown.render(text))  # noqa: S704 - raw HTML is off, so markdown-it escapes all input


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


def _require_reagreement(session: Session, school_id: int) -> int:
    """Flag every active member of the school's groups as needing to re-agree; return how many."""
    active = (Status.APPROVED, Status.INVITED, Status.LINK_USED)
    groups = select(Group.id).where(Group.school_id == school_id)
    result = session.exec(
        update(Membership)
        .where(Membership.group_id.in_(groups), Membership.status.in_(active), Membership.needs_reagree.is_(False))
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
