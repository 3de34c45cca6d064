"""Class lists from CSV: validate the whole file, then import all of it or nothing."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, select

from . import codes, schools
from .models import Child, EnrolmentCode, Group, utcnow
from .validation import Invalid, child_name
from .validation import email as valid_email

NAME_COLUMNS = ("display_name", "child", "child_name", "name")
GROUP_COLUMNS = ("group", "group_slug", "class")
EMAIL_COLUMNS = ("carer_emails", "carer_email", "emails", "email")
MAX_EMAILS = 4
DEFAULT_USES = EnrolmentCode.model_fields["uses_allowed"].default  # two carers per child
# A row longer than this is not a name, a group and four emails; a file longer than MAX_ROWS
# is more than any school has, and both keep one upload's work bounded.
MAX_ROW_CHARS = 1200
MAX_ROWS = 20_000
_EMAIL_SPLIT = re.compile(r"[;,\s]+")


@dataclass
class RosterRow:
    """One valid row: a child for a group, with any carer emails."""

    line: int
    display_name: str
    group: Group
    carer_emails: list[str] = field(default_factory=list)


@dataclass
class RosterReport:
    """What a file would import, or why it cannot be imported."""

    rows: list[RosterRow] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every row is valid and there is at least one."""
        return not self.errors and bool(self.rows)


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    for index, title in enumerate(header):
        if title.strip().lower().replace(" ", "_") in names:
            return index
    return None


def _cell(row: list[str], at: int | None) -> str:
    """One stripped cell of a row; empty when the column is absent or the row is short."""
    return row[at].strip() if at is not None and at < len(row) else ""


def _rows(reader: Any, report: RosterReport) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows with their line numbers; a line the csv module cannot read ends the file with an error."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # A NUL byte or a runaway quoted field: say where, rather than fail the whole upload.
            report.errors.append((reader.line_num, f"This line cannot be read as CSV ({exc})"))
            return
        if any(cell.strip() for cell in row):
            yield reader.line_num, row


def parse(session: Session, data: bytes | str, school_id: int, default_group: Group | None = None) -> RosterReport:
    """Check every row of a CSV (BOM, Excel quoting, blank lines and stray spaces are fine)."""
    text = data.decode("utf-8-sig", errors="strict") if isinstance(data, bytes) else data.lstrip("\ufeff")
    report = RosterReport()
    reader = csv.reader(io.StringIO(text))
    header = next((row for _, row in _rows(reader, report)), None)
    if report.errors:
        return report
    if header is None:
        report.errors.append((1, "The file is empty"))
        return report
    name_at, group_at, email_at = (_column(header, names) for names in (NAME_COLUMNS, GROUP_COLUMNS, EMAIL_COLUMNS))
    if name_at is None:
        report.errors.append((1, "The first row must name the columns, including display_name"))
        return report
    if group_at is None and default_group is None:
        report.errors.append((1, "Add a group column with each child's group, like year-3-oak"))
        return report
    groups = {g.slug: g for g in session.exec(select(Group).where(Group.school_id == school_id)).all()}
    existing = {
        (group_id, name.lower())
        for group_id, name in session.exec(
            select(Child.group_id, Child.display_name).where(Child.group_id.in_([g.id for g in groups.values()]))
        ).all()
    }
    seen: dict[tuple[int, str], int] = {}
    for line, row in _rows(reader, report):
        if len(report.rows) + len(report.errors) >= MAX_ROWS:
            report.errors.append((line, f"A file can have at most {MAX_ROWS:,} children: split it into smaller files"))
            break
        if sum(len(cell) for cell in row) > MAX_ROW_CHARS:
            report.errors.append((line, f"This row is longer than {MAX_ROW_CHARS} characters"))
            continue
        cell = partial(_cell, row)
        try:
            name = child_name(cell(name_at))
        except Invalid as exc:
            report.errors.append((line, str(exc)))
            continue
        slug = cell(group_at) or (default_group.slug if default_group else "")
        group = groups.get(slug)
        if not slug:
            report.errors.append((line, f"Enter {name}'s group, like {next(iter(groups), 'year-3-oak')}"))
            continue
        if group is None:
            report.errors.append((line, f"There is no group '{slug}' at this school"))
            continue
        key = (group.id, name.lower())
        if key in existing:
            report.errors.append((line, f"{group.name} already has a child called {name}"))
            continue
        if key in seen:
            report.errors.append(
                (line, f"{name} appears twice in {group.name} (also on line {seen[key]}): "
                 "add more of the surname, like Oliver Sm.")
            )
            continue
        seen[key] = line
        emails: list[str] = []
        for raw in filter(None, _EMAIL_SPLIT.split(cell(email_at))):
            try:
                emails.append(valid_email(raw))
            except Invalid:
                report.errors.append((line, f"'{raw}' is not a valid email address"))
        if len(emails) > MAX_EMAILS:
            report.errors.append((line, f"At most {MAX_EMAILS} carer emails per child"))
        report.rows.append(RosterRow(line, name, group, sorted(set(emails))))
    if not report.rows and not report.errors:
        report.errors.append((1, "The file has no children in it"))
    return report


def apply(session: Session, report: RosterReport) -> list[schools.NewChild]:
    """Import a valid report: each child gets a code, each carer email a personal invitation.

    Children and codes go in as two multi-row INSERTs straight through the Core (no ORM object
    per row to build and flush), so a whole trust's list of 10,000 imports in a second or two;
    new children have no earlier code to revoke.
    """
    if not report.ok:
        raise Invalid("The file has errors; nothing was imported")
    if not report.rows:
        return []
    now = utcnow()
    values = [{"group_id": row.group.id, "display_name": row.display_name, "created_at": now} for row in report.rows]
    ids = session.execute(
        insert(Child).returning(Child.id, sort_by_parameter_order=True), values
    ).scalars().all()
    plain = [codes.generate() for _ in ids]
    session.execute(
        insert(EnrolmentCode),
        [
            {"child_id": child_id, "code_hmac": codes.code_hmac(code), "uses_allowed": DEFAULT_USES,
             "uses_taken": 0, "created_at": now}
            for child_id, code in zip(ids, plain, strict=True)
        ],
    )
    # Plain objects for the letters and invitations: the rows are written, nothing more to flush,
    # and nothing to validate either (model_construct is about a tenth of the cost per child).
    children = [
        Child.model_construct(id=child_id, group_id=row.group.id, display_name=row.display_name, created_at=now)
        for child_id, row in zip(ids, report.rows, strict=True)
    ]
    for row, child in zip(report.rows, children, strict=True):
        for address in row.carer_emails:
            schools.invite_carer(session, row.group, child, address)
    return [schools.NewChild(child, code) for child, code in zip(children, plain, strict=True)]
