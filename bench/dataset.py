"""The data a run needs: a school and groups made with the operator's commands, codes from `roster import`,
and, for the batch timings, tens of thousands of members with a correctly chained ledger, written in bulk.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from flask import Flask
from sqlalchemy import insert

from membership import create_app, ledger, policies, schools
from membership.config import from_env
from membership.db import session_scope
from membership.models import (
    Child,
    DocumentKind,
    LedgerEntry,
    LedgerHead,
    Membership,
    Person,
    Status,
    Verification,
    sort_name,
    utcnow,
)

from .servers import flask_cli

PASSWORD = "bench staff password 2026"  # noqa: S105 - a throwaway account in a temp database
BATCH_SIZE = 5000
FIRST_NAMES = ("Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Sophia", "Grace", "Freya",
               "Noah", "Oliver", "George", "Arthur", "Leo", "Muhammad", "Harry", "Oscar", "Jack", "Theo")
SURNAMES = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
            "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Khan", "Clarke")
# Of every ten members: mostly in the chat, some waiting for a moderator, some gone (as tests/test_query_counts.py).
MIX = [Status.LINK_USED] * 6 + [Status.INVITED, Status.PENDING_APPROVAL, Status.LEFT, Status.REMOVED]


@dataclass(frozen=True)
class SchoolSetup:
    """A school made for the run: its slug, its groups' slugs and chat links, and a staff account."""

    slug: str
    groups: tuple[str, ...]
    chat_url: str
    staff_email: str
    staff_password: str = PASSWORD


def child_name(number: int) -> str:
    """A unique, valid child's display name for a number: a made-up first name and an initial ('Kabcd B.')."""
    letters = ""
    while True:
        number, digit = divmod(number, 26)
        letters += chr(ord("a") + digit)
        if not number:
            break
    return f"K{letters} {chr(ord('A') + len(letters) % 26)}."


def parent_name(number: int) -> str:
    """A parent's name: common first names and surnames, numbered so every one is different."""
    return f"{FIRST_NAMES[number % len(FIRST_NAMES)]} {SURNAMES[number // len(FIRST_NAMES) % len(SURNAMES)]} {number}"


def write_roster(path: Path, rows: int, start: int = 0) -> Path:
    """A class list CSV with a display_name column and `rows` children."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["display_name"])
        writer.writerows([child_name(start + n)] for n in range(rows))
    return path


@contextmanager
def classgate_app(env: dict[str, str]) -> Iterator[Flask]:
    """Classgate in this process, with exactly the settings the served app reads from `env`."""
    app = create_app(from_env(env))
    try:
        with app.app_context():
            yield app
    finally:
        app.extensions["classgate_engine"].dispose()


def create_school(env: dict[str, str], slug: str, group_slugs: tuple[str, ...], requires_approval: bool = False
                  ) -> SchoolSetup:
    """`flask school add` and `flask user add --role staff`, with the groups added by schools.create_group.

    There is no command for groups, so they are made with the same helper the demo and the staff
    console use. No group requires approval: every journey ends at the invite.
    """
    chat_url = f"https://chat.whatsapp.com/Bench{slug.title().replace('-', '')}"
    flask_cli(env, "school", "add", "--slug", slug, "--name", f"{slug.replace('-', ' ').title()} School",
              "--concerns-email", f"office@{slug}.example.com")
    with classgate_app(env), session_scope() as session:
        school = schools.school_by_slug(session, slug)
        for number, group_slug in enumerate(group_slugs):
            schools.create_group(session, school, group_slug, f"Class {number + 1:02d} {group_slug}",
                                 chat_url=chat_url, requires_approval=requires_approval)
    staff = f"staff@{slug}.example.com"
    flask_cli(env, "user", "add", "--email", staff, "--role", "staff", "--school", slug, "--password", PASSWORD)
    return SchoolSetup(slug, group_slugs, chat_url, staff)


def import_codes(env: dict[str, str], group_slug: str, count: int, workdir: Path) -> list[str]:
    """Fresh codes from `flask roster import --group SLUG FILE.csv`, which prints 'name<TAB>code' per child."""
    path = write_roster(workdir / f"roster-{group_slug}.csv", count)
    output = flask_cli(env, "roster", "import", "--group", group_slug, str(path))
    codes = parse_codes(output)
    if len(codes) != count:
        raise RuntimeError(f"roster import printed {len(codes)} codes for {count} children")
    return codes


def parse_codes(output: str) -> list[str]:
    """The codes in `roster import` output (XXXX-XXXX-XXXX after a tab on each line)."""
    codes = []
    for line in output.splitlines():
        _name, tab, code = line.partition("\t")
        if tab and len(code) == 14 and code.count("-") == 2:
            codes.append(code)
    return codes


def seed_members(setup: SchoolSetup, members: int) -> int:
    """Add `members` people, children and memberships to the school's groups, with both agreements of each
    in the school's ledger, chained as the journey would chain them (in bulk). Returns the entries added.
    """
    now = utcnow()
    with session_scope() as session:
        school = schools.school_by_slug(session, setup.slug)
        groups = [schools.group_by_slug(session, slug) for slug in setup.groups]
        coc = policies.current(session, school.id, DocumentKind.CODE_OF_CONDUCT)
        notice = policies.current(session, school.id, DocumentKind.DATA_NOTICE)
        people = [
            {"ref": uuid.uuid4().hex, "name": parent_name(n), "email": f"parent{n}@{setup.slug}.example.com",
             "mobile": "+447911123456", "created_at": now}
            for n in range(members)
        ]
        person_ids = _insert(session, Person, people)
        children = [{"group_id": groups[n % len(groups)].id, "display_name": child_name(n)} for n in range(members)]
        child_ids = _insert(session, Child, children)
        rows = []
        for n in range(members):
            status = MIX[n % len(MIX)]
            ended = status in (Status.LEFT, Status.REMOVED)
            rows.append({
                "group_id": children[n]["group_id"], "person_id": person_ids[n], "child_id": child_ids[n],
                "sort_name": sort_name(people[n]["name"]), "name_erased": False,
                "relationship": "parent", "status": status.value, "verified_by": Verification.CODE.value,
                "holds_code_use": True, "coc_version_id": coc.id, "notice_version_id": notice.id,
                "needs_reagree": False, "email_verified_at": now, "agreed_at": now,
                "approved_at": None if status == Status.PENDING_APPROVAL else now, "ended_at": now if ended else None,
                "end_reason": "abuse" if status == Status.REMOVED else None,
                "chat_removal_due_at": now if ended else None, "created_at": now, "updated_at": now,
            })
        membership_ids = _insert(session, Membership, rows)
        head = session.get(LedgerHead, school.id)
        entries, head.seq, head.head_hash = _chain(school.id, head.seq, head.head_hash, rows, people,
                                                   membership_ids, (coc, notice))
        for start in range(0, len(entries), BATCH_SIZE):
            session.execute(insert(LedgerEntry), entries[start:start + BATCH_SIZE])
        session.add(head)
    return len(entries)


def _insert(session, model: type, rows: list[dict]) -> list[int]:
    """Bulk INSERT … RETURNING id, in batches; the ids in the rows' order."""
    ids: list[int] = []
    for start in range(0, len(rows), BATCH_SIZE):
        statement = insert(model).returning(model.id, sort_by_parameter_order=True)
        ids.extend(session.scalars(statement, rows[start:start + BATCH_SIZE]).all())
    return ids


def _chain(school_id: int, seq: int, prev: str, memberships: list[dict], people: list[dict],
           membership_ids: list[int], documents: tuple) -> tuple[list[dict], int, str]:
    """Both agreements per member as ledger rows, each hashed onto the one before with ledger.compute_hash."""
    entries = []
    for membership, person, membership_id in zip(memberships, people, membership_ids, strict=True):
        for action, version in zip(("agree", "acknowledge"), documents, strict=True):
            seq += 1
            entry = {
                "school_id": school_id, "seq": seq, "created_at": utcnow(), "action": action,
                "person_ref": person["ref"], "actor": f"person:{person['ref']}", "group_id": membership["group_id"],
                "child_id": membership["child_id"], "membership_id": membership_id, "document_kind": version.kind,
                "document_version": version.number, "document_version_id": version.id,
                "document_sha256": version.sha256, "statement": policies.agreement_statement(version),
                "channel": "web", "detail": json.dumps({}), "prev_hash": prev,
            }
            # compute_hash reads the chained fields as attributes, as it does from a LedgerEntry.
            entry["entry_hash"] = prev = ledger.compute_hash(prev, SimpleNamespace(**entry))
            entries.append(entry)
    return entries, seq, prev
