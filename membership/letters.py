"""School letters with enrolment codes: one A4 page per child, as HTML to print or as a PDF.

Codes exist in plain text only at the moment they are made (the database keeps their HMAC), so
the letters for an import or a new code come from that same response: the results page *is*
the print view. For the PDF the page carries a signed "letters token" in a POST form field:

- it holds the (child id, code) pairs, signed (not encrypted: the page around it already shows
  the same codes) and bound to the school and the member of staff, for LETTERS_MAX_AGE seconds;
- it travels only in a POST body, never in a URL, so it is in no address bar, history entry,
  access log or referrer;
- nothing is stored server-side, and the download re-checks each code against its child's
  current HMAC, so a letter is never produced for a code that has since been replaced.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import segno
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from markupsafe import Markup
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfgen.canvas import Canvas
from sqlmodel import Session, select

from . import codes
from .models import Child, EnrolmentCode, Group, School
from .urls import external_url

LETTERS_MAX_AGE = 3600  # an hour to press "Download PDF" after making the codes


class LettersExpired(Exception):
    """The letters token is genuine but too old: the codes can no longer be printed from it."""


class LettersInvalid(Exception):
    """The letters token was not made by Classgate for this school and this member of staff."""


@dataclass
class Letter:
    """Everything one child's letter shows."""

    school_name: str
    group_name: str
    platform: str
    child_name: str
    code: str  # XXXX-XXXX-XXXX
    uses_allowed: int
    join_url: str

    @property
    def paragraphs(self) -> list[str]:
        """The letter's body text (shared by the HTML letter and the PDF)."""
        return letter_paragraphs(self)

    @property
    def qr_svg(self) -> Markup:
        """The join URL as an inline SVG QR code."""
        return qr_svg(self.join_url)


@dataclass
class Issued:
    """A code just made for a child, before it is forgotten."""

    child: Child
    group: Group
    code: str  # canonical, 12 characters
    uses_allowed: int


@lru_cache(maxsize=256)
def qr_svg(url: str) -> Markup:
    """An inline <svg> QR code of a URL (one per group, so cached: a class's letters share it)."""
    svg = segno.make(url, error="m").svg_inline(
        scale=1, border=4, omitsize=True, svgclass="letter__qr-svg", lineclass=None,
        title="QR code that opens the join page",
    )
    svg = svg.replace("<svg ", '<svg role="img" ', 1)
    return Markup(svg)  # noqa: S704  # nosec B704  # segno's own markup of a join URL, no text anyone typed


def letters(school: School, issued: Iterable[Issued]) -> list[Letter]:
    """The letters for codes just made, in the order given."""
    urls: dict[str, str] = {}
    result = []
    for item in issued:
        if item.group.slug not in urls:
            urls[item.group.slug] = external_url("join.join_group", slug=item.group.slug)
        result.append(Letter(
            school_name=school.name, group_name=item.group.name, platform=item.group.platform_label,
            child_name=item.child.display_name, code=codes.display(item.code),
            uses_allowed=item.uses_allowed, join_url=urls[item.group.slug],
        ))
    return result


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="classgate.letters")


def seal(school_id: int, user_id: int, issued: Iterable[Issued]) -> str:
    """The letters token for the PDF download form (see the module docstring)."""
    pairs = [[item.child.id, item.code] for item in issued]
    return _serializer().dumps({"s": school_id, "u": user_id, "l": pairs})


def unseal(token: str, school_id: int, user_id: int) -> list[tuple[int, str]]:
    """The (child id, code) pairs in a letters token; LettersExpired or LettersInvalid otherwise."""
    try:
        payload = _serializer().loads(token or "", max_age=LETTERS_MAX_AGE)
    except SignatureExpired as exc:
        raise LettersExpired() from exc
    except BadSignature as exc:
        raise LettersInvalid() from exc
    if not isinstance(payload, dict) or payload.get("s") != school_id or payload.get("u") != user_id:
        raise LettersInvalid()
    pairs = payload.get("l")
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], int) and isinstance(p[1], str) for p in pairs
    ):
        raise LettersInvalid()
    return [(child_id, code) for child_id, code in pairs]


def reprint(session: Session, school: School, pairs: list[tuple[int, str]]) -> list[Letter]:
    """Letters for the pairs whose code is still the child's current one, at this school."""
    by_child = {child_id: code for child_id, code in pairs}
    rows = session.exec(
        select(Child, Group, EnrolmentCode)
        .join(Group, Group.id == Child.group_id)
        .join(EnrolmentCode, EnrolmentCode.child_id == Child.id)
        .where(Child.id.in_(list(by_child)), Group.school_id == school.id, EnrolmentCode.revoked_at.is_(None))
    ).all()
    live = {
        child.id: Issued(child, group, by_child[child.id], code.uses_allowed)
        for child, group, code in rows
        if code.code_hmac == codes.code_hmac(by_child[child.id])
    }
    return letters(school, (live[child_id] for child_id, _ in pairs if child_id in live))


# --- PDF -------------------------------------------------------------------------------------

PAGE_W, PAGE_H = A4
MARGIN = 20 * mm
QR_SIZE = 45 * mm


def _qr_form(canvas: Canvas, url: str, forms: dict[str, str]) -> str:
    """Draw a URL's QR code once as a reusable PDF form; every letter of the group places it."""
    if url not in forms:
        name = f"qr{len(forms)}"
        matrix = [list(row) for row in segno.make(url, error="m").matrix_iter(border=4)]
        size = len(matrix)
        canvas.beginForm(name, lowerx=0, lowery=0, upperx=size, uppery=size)
        canvas.setFillColorRGB(0, 0, 0)
        for y, row in enumerate(matrix):
            x = 0
            while x < size:
                if row[x]:
                    start = x
                    while x < size and row[x]:
                        x += 1
                    # Runs of dark modules as one rectangle each: fewer operators, no hairline seams.
                    canvas.rect(start, size - y - 1, x - start, 1, stroke=0, fill=1)
                else:
                    x += 1
        canvas.endForm()
        forms[url] = f"{name}:{size}"
    return forms[url]


def _paragraph(canvas: Canvas, text: str, y: float, size: float = 11, font: str = "Helvetica") -> float:
    """Write wrapped text from y downwards; return the y below it."""
    canvas.setFont(font, size)
    for line in simpleSplit(text, font, size, PAGE_W - 2 * MARGIN):
        canvas.drawString(MARGIN, y, line)
        y -= size * 1.35
    return y - size * 0.6


def letter_paragraphs(letter: Letter) -> list[str]:
    """The letter's body text, the same words as the HTML letter."""
    return [
        f"The parents and carers of {letter.group_name} have a group chat on {letter.platform}. It is run by "
        "parent volunteers, not by the school. Joining is voluntary: you do not have to join, and you can "
        "leave at any time.",
        f"The code below is only for the parents and carers of {letter.child_name}: up to "
        f"{letter.uses_allowed} of you can use it, once each. Please keep it private.",
        f"To join, scan the QR code or open {letter.join_url} and enter the code. You will be asked to "
        "agree to the group's code of conduct and to confirm your email address.",
        "If the school has your email address, you may also get a personal invitation by email: you can "
        "use that instead of this code. If this letter is lost, or you need another code, please contact "
        "the school office.",
    ]


def pdf(letters_: list[Letter]) -> bytes:
    """All letters as one PDF, one A4 page each."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, pageCompression=1)
    canvas.setTitle("Letters with joining codes")
    canvas.setCreator("Classgate")
    forms: dict[str, str] = {}
    for letter in letters_:
        form = _qr_form(canvas, letter.join_url, forms)
        y = PAGE_H - MARGIN
        canvas.setFont("Helvetica", 11)
        canvas.drawString(MARGIN, y, letter.school_name)
        y -= 12 * mm
        y = _paragraph(canvas, f"Joining the {letter.group_name} parents' group", y, 18, "Helvetica-Bold")
        y = _paragraph(canvas, f"For the parents and carers of {letter.child_name}", y, 13)
        for text in letter.paragraphs:
            y = _paragraph(canvas, text, y)
        y -= 4 * mm
        canvas.setFont("Helvetica", 11)
        canvas.drawString(MARGIN, y, f"Joining code for {letter.child_name}")
        y -= 12 * mm
        canvas.setFont("Courier-Bold", 28)
        canvas.drawString(MARGIN, y, letter.code)
        y -= 8 * mm
        canvas.setFont("Helvetica", 11)
        canvas.drawString(MARGIN, y, letter.join_url)
        name, size = form.split(":")
        canvas.saveState()
        canvas.translate(MARGIN, y - 8 * mm - QR_SIZE)
        canvas.scale(QR_SIZE / int(size), QR_SIZE / int(size))
        canvas.doForm(name)
        canvas.restoreState()
        canvas.showPage()
    canvas.save()
    return out.getvalue()
