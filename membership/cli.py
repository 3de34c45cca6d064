"""The operator's `flask --app app …` commands."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlmodel import select

from . import codes, ledger, mail, privacy, roster, schools
from .db import session_scope
from .models import Child, EnrolmentCode, Group, Role, School, User
from .urls import external_url
from .validation import Invalid

DEMO_SCHOOL = ("demo-primary", "Oakfield Primary School (demo)", "office@oakfield-demo.example")
DEMO_GROUPS = [
    {
        "slug": "year-3-oak",
        "name": "Year 3 Oak",
        "description": "Reminders and friendly chat for parents and carers of Year 3 Oak.",
        "chat_url": "https://chat.whatsapp.com/DemoYear3OakInvite",
        "requires_approval": False,
        "children": ["Amelia R.", "Noah T.", "Isla K.", "Oliver S."],
        "moderator": "rep.oak@oakfield-demo.example",
    },
    {
        "slug": "reception-willow",
        "name": "Reception Willow",
        "description": "The parents' group for Reception Willow. A class rep approves each request.",
        "chat_url": "https://chat.whatsapp.com/DemoReceptionWillowInvite",
        "requires_approval": True,
        "children": ["Freya M.", "Arjun P.", "Zara B.", "Leo W."],
        "moderator": "rep.willow@oakfield-demo.example",
    },
]
DEMO_STAFF = "office@oakfield-demo.example"
DEMO_CODES_PER_GROUP = 3


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _school(session, slug: str) -> School:
    school = schools.school_by_slug(session, slug)
    if school is None:
        _fail(f"there is no school '{slug}'")
    return school


def _demo_user(session, school: School, email: str, role: Role, groups: list[Group]) -> str:
    """Create or refresh a demo account; return a new password (only its hash is kept)."""
    password = secrets.token_urlsafe(12)
    user = session.exec(select(User).where(User.email == email)).first()
    if user is None:
        user = schools.create_user(session, school, email, role, name=email.split("@")[0], groups=groups)
    schools.set_password(user, password)
    session.add(user)
    return password


def _fresh_codes(session, group: Group, wanted: int) -> list[str]:
    """New codes for demo children whose current code is still unused; add children if needed."""
    unused = session.exec(
        select(Child)
        .join(EnrolmentCode, EnrolmentCode.child_id == Child.id)
        .where(Child.group_id == group.id, EnrolmentCode.revoked_at.is_(None), EnrolmentCode.uses_taken == 0)
        .order_by(Child.id)
    ).all()
    fresh = [codes.issue_code(session, child) for child in unused[:wanted]]
    number = session.exec(select(Child).where(Child.group_id == group.id)).all()
    while len(fresh) < wanted:
        name = f"Demo {chr(ord('A') + len(number) % 26)}."
        fresh.append(schools.add_child(session, group, name).code)
        number.append(None)
    return fresh


def load_demo(session) -> dict:
    """Create the demo school once; every call returns fresh codes and passwords."""
    slug, name, concerns = DEMO_SCHOOL
    school = schools.school_by_slug(session, slug) or schools.create_school(session, slug, name, concerns)
    out_groups, moderators = [], []
    for spec in DEMO_GROUPS:
        group = schools.group_by_slug(session, spec["slug"])
        if group is not None and group.school_id != school.id:
            # Group slugs are unique across schools: never rotate a real school's codes for a demo.
            raise Invalid(f"the group '{group.slug}' belongs to another school, so the demo cannot be loaded")
        if group is None:
            group = schools.create_group(
                session, school, spec["slug"], spec["name"], description=spec["description"],
                chat_url=spec["chat_url"], requires_approval=spec["requires_approval"],
            )
            for child in spec["children"]:
                schools.add_child(session, group, child)
        out_groups.append({
            "slug": group.slug,
            "name": group.name,
            "join_url": external_url("join.join_group", slug=group.slug),
            "chat_url": group.chat_url,
            "requires_approval": group.requires_approval,
            "codes": [codes.display(code) for code in _fresh_codes(session, group, DEMO_CODES_PER_GROUP)],
        })
        password = _demo_user(session, school, spec["moderator"], Role.MODERATOR, [group])
        moderators.append({"email": spec["moderator"], "password": password, "groups": [group.slug]})
    staff_password = _demo_user(session, school, DEMO_STAFF, Role.STAFF, [])
    return {
        "base_url": current_app.config["BASE_URL"],
        "school": {"slug": school.slug, "name": school.name},
        "groups": out_groups,
        "staff": {"email": DEMO_STAFF, "password": staff_password},
        "moderators": moderators,
        "outbox_dir": current_app.config["OUTBOX_DIR"],
    }


def register(app: Flask) -> None:
    """Attach every command group to the app."""

    @app.cli.command("demo")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    @click.option("--if-empty", is_flag=True, help="Do nothing if any school exists already.")
    def demo(as_json: bool, if_empty: bool) -> None:
        """Load demo data (idempotent) and print fresh codes and passwords."""
        with session_scope() as session:
            if if_empty and session.exec(select(School.id)).first() is not None:
                click.echo("Database already has data; demo not loaded.")
                return
            try:
                data = load_demo(session)
            except Invalid as exc:
                _fail(str(exc))
        if as_json:
            click.echo(json.dumps(data, indent=2))
            return
        click.echo(f"Demo school: {data['school']['name']}")
        for group in data["groups"]:
            click.echo(f"  {group['name']}: {group['join_url']}  codes: {', '.join(group['codes'])}")
        click.echo(f"  staff: {data['staff']['email']} / {data['staff']['password']}")
        for moderator in data["moderators"]:
            click.echo(f"  moderator: {moderator['email']} / {moderator['password']}")
        click.echo(f"  emails are written to {data['outbox_dir']}")

    school_cli = AppGroup("school", help="Schools.")

    @school_cli.command("add")
    @click.option("--slug", required=True)
    @click.option("--name", required=True)
    @click.option("--concerns-email", required=True)
    def school_add(slug: str, name: str, concerns_email: str) -> None:
        """Create a school with Classgate's default documents."""
        with session_scope() as session:
            if schools.school_by_slug(session, slug):
                _fail(f"a school '{slug}' exists already")
            try:
                schools.create_school(session, slug, name, concerns_email)
            except Invalid as exc:
                _fail(str(exc))
        click.echo(f"Created school {slug}.")

    user_cli = AppGroup("user", help="Staff and moderator accounts.")

    @user_cli.command("add")
    @click.option("--email", required=True)
    @click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
    @click.option("--school", "school_slug", required=True)
    @click.option("--group", "group_slugs", multiple=True)
    @click.option("--password", default=None)
    def user_add(email: str, role: str, school_slug: str, group_slugs: tuple[str, ...], password: str | None) -> None:
        """Create an account; without --password a set-password link is emailed."""
        if group_slugs and role != Role.MODERATOR:
            _fail("--group is for moderators: staff see every group of their school")
        with session_scope() as session:
            school = _school(session, school_slug)
            groups = []
            for slug in group_slugs:
                group = schools.group_by_slug(session, slug)
                if group is None or group.school_id != school.id:
                    _fail(f"{school_slug} has no group '{slug}'")
                groups.append(group)
            if session.exec(select(User).where(User.email == email.strip().lower())).first():
                _fail(f"an account for {email} exists already")
            try:
                user = schools.create_user(session, school, email, Role(role), groups=groups, password=password)
                if password is None:
                    schools.send_set_password(session, user)
            except Invalid as exc:
                _fail(str(exc))
        click.echo(f"Created {role} {email}." + ("" if password else " A set-password link has been emailed."))

    roster_cli = AppGroup("roster", help="Class lists.")

    @roster_cli.command("import")
    @click.option("--group", "group_slug", required=True)
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    def roster_import(group_slug: str, file: Path) -> None:
        """Import children from a CSV and print each one's new code (shown only this once)."""
        with session_scope() as session:
            group = schools.group_by_slug(session, group_slug)
            if group is None:
                _fail(f"there is no group '{group_slug}'")
            try:
                report = roster.parse(session, file.read_bytes(), group.school_id, default_group=group)
            except UnicodeDecodeError:
                _fail("the file is not UTF-8 text; save it from Excel as 'CSV UTF-8'")
            if not report.ok:
                for line, message in report.errors:
                    click.echo(f"line {line}: {message}", err=True)
                _fail(f"{len(report.errors)} problem(s); nothing was imported")
            added = roster.apply(session, report)
        for new in added:
            click.echo(f"{new.child.display_name}\t{codes.display(new.code)}")

    ledger_cli = AppGroup("ledger", help="The acceptance ledger.")

    @ledger_cli.command("verify")
    @click.option("--school", "school_slug", default=None)
    def ledger_verify(school_slug: str | None) -> None:
        """Check every school's hash chain (or one); exit 1 naming the first broken entry."""
        with session_scope(write=False) as session:
            if school_slug:
                targets = [_school(session, school_slug)]
            else:
                targets = session.exec(select(School).order_by(School.id)).all()
            broken = False
            for school in targets:
                result = ledger.verify(session, school.id)
                if result.ok:
                    click.echo(f"{school.slug}: intact, {result.entries} entries, head {result.head_hash}")
                else:
                    broken = True
                    where = f"entry {result.broken_seq} (id {result.broken_id})" if result.broken_seq else "chain head"
                    click.echo(f"{school.slug}: BROKEN at {where}: {result.reason}")
        sys.exit(1 if broken else 0)

    outbox_cli = AppGroup("outbox", help="Outgoing email.")

    @outbox_cli.command("send")
    def outbox_send() -> None:
        """Deliver every due message; failures stay queued for a later run."""
        with session_scope() as session:
            sent, failed = mail.send_pending(session)
        click.echo(f"Sent {sent}, failed {failed} (will be retried).")
        sys.exit(1 if failed and not sent else 0)

    @app.cli.command("purge")
    @click.option("--dry-run", is_flag=True, help="Count what would be erased; change nothing.")
    @click.option("--days", type=click.IntRange(min=0), default=None,
                  help="Retention period in days (default: RETENTION_DAYS).")
    def purge(dry_run: bool, days: int | None) -> None:
        """Erase personal details kept longer than the retention period. Safe to run daily, and again."""
        period = current_app.config["RETENTION_DAYS"] if days is None else days
        with session_scope() as session:
            counts = privacy.purge(session, retention_days=period, dry_run=dry_run)
        people = counts.people
        verb = "Would erase" if dry_run else "Erased"
        click.echo(("Dry run: nothing was changed.\n" if dry_run else "") + (
            f"{verb} the personal details of {counts.total_people} "
            f"{'person' if counts.total_people == 1 else 'people'}: {people['left']} left a group, "
            f"{people['removed']} removed, {people['rejected']} declined (more than {period} days ago), "
            f"{people['unconfirmed']} never confirmed their email (more than a day ago)."
        ))
        click.echo(
            f"{'Would delete' if dry_run else 'Deleted'} {counts.sign_in_links} old sign-in links and "
            f"{counts.emails} sent emails older than {period} days; "
            f"{'would blank' if dry_run else 'blanked'} {counts.emails_blanked} sent emails naming people "
            f"who have since erased their details; "
            f"{'would erase' if dry_run else 'erased'} the contact details of {counts.concerns} "
            f"concerns closed more than {period} days ago."
        )

    for group in (school_cli, user_cli, roster_cli, ledger_cli, outbox_cli):
        app.cli.add_command(group)
