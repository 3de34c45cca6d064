"""The operator's `flask --app app …` commands, checked by what the operator and the school would see."""

from __future__ import annotations

import json
import re
import socketserver
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import func, update
from sqlmodel import select

from membership import schools, tokens
from membership.db import session_scope
from membership.models import (
    CarerInvitation,
    Child,
    EnrolmentCode,
    Group,
    GroupModerator,
    LedgerHead,
    OutboxMessage,
    PolicyVersion,
    School,
    User,
    utcnow,
)
from membership.passwords import check_password

from .conftest import BASE_URL, link_in, outbox, text_of

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
REFUSED = "That code was not accepted"


# --- helpers -----------------------------------------------------------------------------------


def cli(app, *args: str):
    """Run `flask --app app …` as the operator would."""
    return app.test_cli_runner().invoke(args=list(args))


def count(db, model) -> int:
    """How many rows a table has now."""
    db.commit()
    return db.exec(select(func.count()).select_from(model)).one()


def code_accepted(browser, slug: str, code: str) -> bool:
    """Type a code on a group's join page; True when it lets the parent on to their details."""
    response = browser.submit(f"/join/{slug}", {"code": code})
    if response.status_code == 303:
        assert response.headers["Location"].endswith(f"/join/{slug}/details")
        return True
    assert response.status_code == 400 and REFUSED in text_of(response)
    return False


def write_csv(tmp_path: Path, content: str | bytes, name: str = "roster.csv") -> str:
    """Save a class list the way the school office would."""
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def imported_codes(output: str) -> dict[str, str]:
    """The name → code lines `roster import` printed."""
    pairs = [line.split("\t") for line in output.splitlines() if "\t" in line]
    return {name: code for name, code in pairs}


def smtp_settings(app, host: str, port: int) -> None:
    """Point the sender at an SMTP server, with no .eml files (as in production)."""
    app.config.update(MAIL_WRITE_FILES=False, SMTP_HOST=host, SMTP_PORT=port, SMTP_STARTTLS=False, SMTP_USER="")


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough of RFC 5321 for smtplib to hand over a message."""

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 test.invalid ESMTP")
        recipients: list[str] = []
        while raw := self.rfile.readline():
            command = raw.decode("utf-8", "replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 test.invalid")
            elif verb == "RCPT":
                if self.server.rcpt_reply.startswith("250"):
                    recipients.append(command.split(":", 1)[1].strip(" <>"))
                self.reply(self.server.rcpt_reply)
            elif verb in ("MAIL", "RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                self.server.received.append((recipients, b"".join(lines)))
                recipients = []
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Not implemented")


class SMTPServer(socketserver.ThreadingTCPServer):
    """A local SMTP server that keeps what it receives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.received: list[tuple[list[str], bytes]] = []
        self.rcpt_reply = "250 OK"  # what the server says to each recipient


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A working mail server on a free local port."""
    server = SMTPServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (port 1 is privileged and unused)."""
    return 1


# --- demo --------------------------------------------------------------------------------------


def run_demo(app) -> dict:
    """`flask --app app demo --json`, parsed."""
    result = cli(app, "demo", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_demo_json_has_the_contract_shape(app, db) -> None:
    """The demo prints one JSON object with exactly the fields the README and contract promise."""
    data = run_demo(app)
    assert set(data) == {"base_url", "school", "groups", "staff", "moderators", "outbox_dir"}
    assert data["base_url"] == BASE_URL
    assert data["outbox_dir"] == app.config["OUTBOX_DIR"]
    assert set(data["school"]) == {"slug", "name"}
    assert data["school"]["slug"] == "demo-primary"
    assert [g["slug"] for g in data["groups"]] == ["year-3-oak", "reception-willow"]
    for group in data["groups"]:
        assert set(group) == {"slug", "name", "join_url", "chat_url", "requires_approval", "codes"}
        assert group["join_url"] == f"{BASE_URL}/join/{group['slug']}"
        assert group["chat_url"].startswith("https://")
        assert isinstance(group["requires_approval"], bool)
        assert len(group["codes"]) >= 1 and len(set(group["codes"])) == len(group["codes"])
        assert all(CODE.match(code) for code in group["codes"]), group["codes"]
    assert [g["requires_approval"] for g in data["groups"]] == [False, True]
    assert set(data["staff"]) == {"email", "password"}
    assert len(data["moderators"]) == 2
    for moderator in data["moderators"]:
        assert set(moderator) == {"email", "password", "groups"}
    assert [m["groups"] for m in data["moderators"]] == [["year-3-oak"], ["reception-willow"]]

    db.commit()
    for account in [data["staff"], *data["moderators"]]:
        user = db.exec(select(User).where(User.email == account["email"])).one()
        assert check_password(user.password_hash, account["password"])
    staff = db.exec(select(User).where(User.email == data["staff"]["email"])).one()
    assert staff.role == "staff"


def test_demo_without_json_is_readable(app) -> None:
    """Without --json the demo prints the join URLs, codes and accounts as plain lines."""
    result = cli(app, "demo")
    assert result.exit_code == 0, result.output
    assert "Demo school: Oakfield Primary School (demo)" in result.stdout
    assert f"{BASE_URL}/join/year-3-oak" in result.stdout
    assert "staff: office@oakfield-demo.example / " in result.stdout


def test_demo_codes_are_fresh_and_work(app, browser) -> None:
    """Every code the demo prints lets a parent past the join page of its own group, and only that group."""
    data = run_demo(app)
    oak, willow = data["groups"]
    for group in data["groups"]:
        for code in group["codes"]:
            assert code_accepted(browser, group["slug"], code), code
    assert not code_accepted(browser, willow["slug"], oak["codes"][0])


def test_demo_is_idempotent_and_rotates_codes_and_passwords(app, db, browser) -> None:
    """Running the demo twice keeps one school, its groups and accounts; the old codes and passwords stop working."""
    first = run_demo(app)
    counts = {model: count(db, model) for model in (School, Group, User, GroupModerator, PolicyVersion, LedgerHead)}
    second = run_demo(app)
    assert {model: count(db, model) for model in counts} == counts
    assert counts[School] == 1 and counts[Group] == 2 and counts[User] == 3
    assert second["school"] == first["school"]
    strip = [{k: v for k, v in g.items() if k != "codes"} for g in first["groups"]]
    assert [{k: v for k, v in g.items() if k != "codes"} for g in second["groups"]] == strip

    for old, new in zip(first["groups"], second["groups"], strict=True):
        assert not set(old["codes"]) & set(new["codes"])
        for code in new["codes"]:
            assert code_accepted(browser, new["slug"], code), code
        for code in old["codes"]:
            assert not code_accepted(browser, old["slug"], code), code

    db.commit()
    for before, after in zip([first["staff"], *first["moderators"]], [second["staff"], *second["moderators"]],
                             strict=True):
        user = db.exec(select(User).where(User.email == after["email"])).one()
        assert check_password(user.password_hash, after["password"])
        assert not check_password(user.password_hash, before["password"])


def test_demo_keeps_a_code_a_parent_is_using(app, db, journey, browser) -> None:
    """A demo code a parent has already started with is left alone; the next run still prints enough fresh codes."""
    first = run_demo(app)
    oak_code = first["groups"][0]["codes"][0]
    journey.code("year-3-oak", oak_code)
    assert journey.details("year-3-oak").status_code == 302
    second = run_demo(app)
    oak = second["groups"][0]
    assert len(oak["codes"]) == len(first["groups"][0]["codes"])
    assert oak_code not in oak["codes"]
    for code in oak["codes"]:
        assert code_accepted(browser, "year-3-oak", code)
    # The parent's own code still works for the second carer of that child.
    assert code_accepted(browser, "year-3-oak", oak_code)
    db.commit()
    assert db.exec(select(func.max(EnrolmentCode.uses_taken))).one() == 1


def test_demo_if_empty_leaves_an_existing_database_alone(app, school, db) -> None:
    """`make run` on a database with a real school does not add demo data."""
    result = cli(app, "demo", "--if-empty")
    assert result.exit_code == 0
    assert "already has data" in result.output
    assert count(db, School) == 1


def test_demo_never_touches_another_schools_group(app, db, browser) -> None:
    """If a real school already uses a demo group's slug, the demo refuses rather than rotating that school's codes."""
    with session_scope() as session:
        real = schools.create_school(session, "real-school", "Real School", "office@real.example")
        group = schools.create_group(session, real, "year-3-oak", "Year 3 Oak (real)")
        real_code = schools.add_child(session, group, "Maya P.").code
    result = cli(app, "demo", "--json")
    assert result.exit_code == 2
    assert "year-3-oak" in result.output
    assert count(db, School) == 1 and count(db, User) == 0
    assert code_accepted(browser, "year-3-oak", real_code)


# --- school add --------------------------------------------------------------------------------


def test_school_add_creates_a_ready_school(app, db) -> None:
    """`school add` makes a school with its three default documents and an empty ledger that verifies."""
    result = cli(app, "school", "add", "--slug", "oak-primary", "--name", "Oak Primary",
                 "--concerns-email", "Office@Oak.Example")
    assert result.exit_code == 0, result.output
    assert "Created school oak-primary." in result.output
    db.commit()
    school = db.exec(select(School)).one()
    assert (school.slug, school.name, school.concerns_email) == ("oak-primary", "Oak Primary", "office@oak.example")
    kinds = sorted(db.exec(select(PolicyVersion.kind).where(PolicyVersion.school_id == school.id)))
    assert kinds == ["code_of_conduct", "data_notice", "moderator_notice"]
    verify = cli(app, "ledger", "verify", "--school", "oak-primary")
    assert verify.exit_code == 0 and "oak-primary: intact, 0 entries" in verify.output


def test_school_add_refuses_a_duplicate_slug(app, school, db) -> None:
    """Adding a school whose slug is taken fails with exit 2 and changes nothing."""
    before = count(db, PolicyVersion)
    result = cli(app, "school", "add", "--slug", "elm-primary", "--name", "Another Elm",
                 "--concerns-email", "other@elm.example")
    assert result.exit_code == 2
    assert "exists already" in result.stderr
    assert count(db, School) == 1 and count(db, PolicyVersion) == before
    assert db.exec(select(School.name)).one() == "Elm Primary School"


@pytest.mark.parametrize(
    "slug, name, email",
    [
        ("Oak Primary", "Oak Primary", "office@oak.example"),
        ("oak-primary", "Oak Primary", "not-an-email"),
        ("oak-primary", "   ", "office@oak.example"),
        ("oak-primary", "O" * 121, "office@oak.example"),
    ],
)
def test_school_add_refuses_bad_details(app, db, slug: str, name: str, email: str) -> None:
    """A bad slug, email or name is explained, exits 2 and creates nothing (no half-made school)."""
    result = cli(app, "school", "add", "--slug", slug, "--name", name, "--concerns-email", email)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ")
    assert count(db, School) == 0 and count(db, PolicyVersion) == 0 and count(db, LedgerHead) == 0


# --- user add ----------------------------------------------------------------------------------


def test_user_add_with_password_can_sign_in(app, school, db) -> None:
    """An account made with --password has a hash that accepts exactly that password, and no email is sent."""
    password = "correct horse battery staple"
    result = cli(app, "user", "add", "--email", "Head@Elm.Example", "--role", "staff", "--school", "elm-primary",
                 "--password", password)
    assert result.exit_code == 0, result.output
    db.commit()
    user = db.exec(select(User)).one()
    assert (user.email, user.role) == ("head@elm.example", "staff")
    assert user.password_hash and password not in user.password_hash
    assert check_password(user.password_hash, password)
    assert not check_password(user.password_hash, password.upper())
    assert outbox(db) == []


def test_user_add_moderator_for_groups(app, school, db) -> None:
    """A moderator added with --group moderates exactly those groups."""
    result = cli(app, "user", "add", "--email", "rep@example.com", "--role", "moderator", "--school",
                 "elm-primary", "--group", "year-2-ash", "--group", "year-4-birch", "--password", "x" * 16)
    assert result.exit_code == 0, result.output
    db.commit()
    user = db.exec(select(User)).one()
    slugs = db.exec(
        select(Group.slug).join(GroupModerator, GroupModerator.group_id == Group.id)
        .where(GroupModerator.user_id == user.id).order_by(Group.slug)
    ).all()
    assert slugs == ["year-2-ash", "year-4-birch"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--password", "short"], "at least 12 characters"),
        (["--group", "no-such-group"], "has no group 'no-such-group'"),
        (["--school", "no-such-school"], "there is no school 'no-such-school'"),
        (["--email", "not an email"], "email address"),
        (["--role", "staff", "--group", "year-2-ash"], "--group is for moderators"),
    ],
)
def test_user_add_refuses_bad_details(app, school, db, extra: list[str], message: str) -> None:
    """A short password, unknown group or school, bad email, or groups for staff are explained; no account is made."""
    args = {"--email": "rep@example.com", "--role": "moderator", "--school": "elm-primary"}
    args.update(zip(extra[::2], extra[1::2], strict=True))
    result = cli(app, "user", "add", *[part for pair in args.items() for part in pair])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert count(db, User) == 0 and count(db, GroupModerator) == 0 and outbox(db) == []


def test_user_add_refuses_a_duplicate_email(app, school, db) -> None:
    """The same email twice (in any case) is refused; the first account is untouched."""
    assert cli(app, "user", "add", "--email", "a@elm.example", "--role", "staff", "--school", "elm-primary",
               "--password", "first password 1").exit_code == 0
    again = cli(app, "user", "add", "--email", "A@ELM.example", "--role", "moderator", "--school", "elm-primary")
    assert again.exit_code == 2 and "exists already" in again.stderr
    db.commit()
    user = db.exec(select(User)).one()
    assert user.role == "staff" and check_password(user.password_hash, "first password 1")
    assert outbox(db) == []


def test_user_add_without_password_emails_a_working_single_use_link(app, school, db, browser) -> None:
    """Without --password the new user gets an email whose link lets them choose a password, once."""
    result = cli(app, "user", "add", "--email", "rep@elm.example", "--role", "moderator", "--school", "elm-primary",
                 "--group", "year-2-ash")
    assert result.exit_code == 0, result.output
    assert "set-password link has been emailed" in result.output
    db.commit()
    user = db.exec(select(User)).one()
    assert user.password_hash is None
    [message] = outbox(db, to="rep@elm.example", kind="set-password")
    link = link_in(message)
    assert link.startswith(f"{BASE_URL}/account/set-password/")

    form = browser.get(link)
    assert form.status_code == 200
    assert "Choose a password" in text_of(form) and "rep@elm.example" in text_of(form)
    assert form.headers["Referrer-Policy"] == "no-referrer"
    csrf = browser.hidden_fields(form.get_data(as_text=True))
    assert "csrf_token" in csrf

    # A post without the page's CSRF token is refused and sets nothing.
    forged = browser.client.post(browser.path(link), data={"password": "p" * 14, "confirm": "p" * 14})
    assert forged.status_code == 400
    db.commit()
    assert db.get(User, user.id).password_hash is None

    mismatch = browser.submit(link, {"password": "a long password 1", "confirm": "a long password 2"})
    assert mismatch.status_code == 400 and "do not match" in text_of(mismatch)
    too_short = browser.submit(link, {"password": "short", "confirm": "short"})
    assert too_short.status_code == 400 and "at least 12 characters" in text_of(too_short)

    password = "three random words"
    saved = browser.submit(link, {"password": password, "confirm": password})
    assert saved.status_code == 200 and "Password saved" in text_of(saved)
    db.commit()
    db.refresh(user)
    assert check_password(user.password_hash, password)

    dead = browser.get(link)
    assert dead.status_code == 404 and "This link does not work" in text_of(dead)
    # Even with a valid CSRF token from the page seen earlier, posting to the dead link changes nothing.
    reuse = browser.client.post(browser.path(link), data={**csrf, "password": "x" * 20, "confirm": "x" * 20})
    assert reuse.status_code == 404
    db.commit()
    db.refresh(user)
    assert check_password(user.password_hash, password)


@pytest.mark.parametrize("tamper", ["flip", "truncate", "other-purpose"])
def test_set_password_link_refuses_a_tampered_token(app, school, db, browser, tamper: str) -> None:
    """An altered set-password link, or a link made for another purpose, shows 'does not work'."""
    assert cli(app, "user", "add", "--email", "rep@elm.example", "--role", "staff", "--school",
               "elm-primary").exit_code == 0
    token = link_in(outbox(db, kind="set-password")[0]).rsplit("/", 1)[1]
    if tamper == "flip":
        token = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    elif tamper == "truncate":
        token = token[: len(token) // 2]
    else:
        user_id = db.exec(select(User.id)).one()
        token = tokens.issue("verify-email", {"u": user_id, "f": "x"})
    response = browser.get(f"/account/set-password/{token}")
    assert response.status_code == 404
    assert "This link does not work" in text_of(response)
    assert "Choose a password" not in text_of(response)


# --- roster import -----------------------------------------------------------------------------


def test_roster_import_prints_a_working_code_per_child(app, school, db, browser, tmp_path) -> None:
    """Each child in the file gets a new XXXX-XXXX-XXXX code, printed once, that works on the join page."""
    path = write_csv(tmp_path, "display_name\nAmelia R.\nNoah T.\nIsla K\n")
    result = cli(app, "roster", "import", "--group", "year-2-ash", path)
    assert result.exit_code == 0, result.output
    printed = imported_codes(result.stdout)
    assert list(printed) == ["Amelia R.", "Noah T.", "Isla K."]
    assert all(CODE.match(code) for code in printed.values())
    assert len(set(printed.values())) == 3
    for code in printed.values():
        assert code_accepted(browser, "year-2-ash", code)
        assert not code_accepted(browser, "year-4-birch", code)
    db.commit()
    assert count(db, Child) == 3
    # Only the HMAC is stored, never the code itself.
    stored = " ".join(db.exec(select(EnrolmentCode.code_hmac)).all())
    for code in printed.values():
        assert code.replace("-", "") not in stored


def test_roster_import_with_a_group_column(app, school, db, browser, tmp_path) -> None:
    """A group column puts each child in the named group of the same school."""
    path = write_csv(tmp_path, "Display Name,Group\nAmelia R.,year-2-ash\nNoah T.,year-4-birch\nIsla K.,\n")
    result = cli(app, "roster", "import", "--group", "year-2-ash", path)
    assert result.exit_code == 0, result.output
    printed = imported_codes(result.stdout)
    assert code_accepted(browser, "year-2-ash", printed["Amelia R."])
    assert code_accepted(browser, "year-4-birch", printed["Noah T."])
    assert code_accepted(browser, "year-2-ash", printed["Isla K."])
    assert not code_accepted(browser, "year-2-ash", printed["Noah T."])


def test_roster_with_bad_rows_imports_nothing_and_lists_every_bad_line(app, school, db, tmp_path) -> None:
    """One bad row stops the whole file: nothing is imported, no email is sent, and each bad line is named."""
    path = write_csv(
        tmp_path,
        "display_name,group,carer_emails\n"      # line 1
        "Amelia R.,year-2-ash,amelia.mum@example.com\n"  # line 2: fine
        "Noah Thompson,year-2-ash,\n"             # line 3: full surname
        "Amelia R,year-2-ash,\n"                  # line 4: the same child again
        f"{'Maximilian' * 5} Q.,year-2-ash,\n"   # line 5: too long
        "Isla K.,year-9-nowhere,\n"               # line 6: no such group
        "Oliver S.,year-2-ash,not-an-email\n"     # line 7: bad carer email
        "<script> X.,year-2-ash,\n"               # line 8: not a name
        "Freya M.,year-4-birch,\n",               # line 9: fine
    )
    result = cli(app, "roster", "import", "--group", "year-2-ash", path)
    assert result.exit_code == 2
    for line in (3, 4, 5, 6, 7, 8):
        assert f"line {line}: " in result.stderr, result.stderr
    for line in (1, 2, 9):
        assert f"line {line}: " not in result.stderr
    assert "also on line 2" in result.stderr
    assert "year-9-nowhere" in result.stderr
    assert "6 problem(s); nothing was imported" in result.stderr
    assert not CODE.search(result.stdout)
    assert count(db, Child) == 0 and count(db, EnrolmentCode) == 0 and count(db, CarerInvitation) == 0
    assert outbox(db) == []


def test_roster_refuses_a_child_already_in_the_group(app, school, db, make_code, tmp_path) -> None:
    """Importing a child the group already has is refused, so nobody's code is silently replaced."""
    make_code("year-2-ash", "Amelia R.")
    path = write_csv(tmp_path, "display_name\nNoah T.\namelia r.\n")
    result = cli(app, "roster", "import", "--group", "year-2-ash", path)
    assert result.exit_code == 2
    assert re.search(r"line 3: Year 2 Ash already has a child called amelia r\.", result.stderr, re.IGNORECASE)
    assert count(db, Child) == 1


def test_roster_from_excel_imports_fine(app, school, db, browser, tmp_path) -> None:
    """A 'CSV UTF-8' file from Excel (BOM, quotes, CRLF, blank lines, stray spaces) imports cleanly."""
    content = (
        "\ufeff\"display_name\",\"group\",\"carer_emails\"\r\n"
        "\r\n"
        "\"Amelia R. \",\"year-2-ash \",\" amelia.mum@example.com, amelia.dad@example.com \"\r\n"
        "Zoë O.  , year-2-ash ,\r\n"
        ",,\r\n"
        "\"Mary-Jane K.\",\"year-4-birch\",\"\"\r\n"
        "\r\n"
    ).encode()
    path = write_csv(tmp_path, content)
    result = cli(app, "roster", "import", "--group", "year-2-ash", path)
    assert result.exit_code == 0, result.output
    printed = imported_codes(result.stdout)
    assert list(printed) == ["Amelia R.", "Zoë O.", "Mary-Jane K."]
    db.commit()
    assert set(db.exec(select(Child.display_name)).all()) == set(printed)
    assert code_accepted(browser, "year-4-birch", printed["Mary-Jane K."])
    assert {m.to_addr for m in outbox(db, kind="carer-invitation")} == {
        "amelia.mum@example.com", "amelia.dad@example.com",
    }


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "line 1: The file is empty"),
        ("display_name\n\n", "line 1: The file has no children in it"),
        ("first,last\nAmelia,R\n", "line 1: The first row must name the columns, including display_name"),
        ("display_name,group\nAmelia R.,year-9-nowhere\nNoah T.,year-2-ash\n", "line 2: There is no group"),
    ],
)
def test_roster_refuses_files_it_cannot_use(app, school, db, tmp_path, content: str, message: str) -> None:
    """An empty file, one with no children, or one without a display_name column is explained and imports nothing."""
    result = cli(app, "roster", "import", "--group", "year-2-ash", write_csv(tmp_path, content))
    assert result.exit_code == 2
    assert message in result.stderr
    assert count(db, Child) == 0


def test_roster_refuses_a_file_that_is_not_utf8(app, school, db, tmp_path) -> None:
    """A file saved in an old Excel encoding is refused with advice, not a traceback."""
    path = write_csv(tmp_path, "display_name\nZoë K.\n".encode("cp1252"))
    result = cli(app, "roster", "import", "--group", "year-2-ash", path)
    assert result.exit_code == 2
    assert "CSV UTF-8" in result.stderr
    assert count(db, Child) == 0


def test_roster_import_unknown_group(app, school, tmp_path) -> None:
    """Naming a group that does not exist is a clear error."""
    path = write_csv(tmp_path, "display_name\nAmelia R.\n")
    result = cli(app, "roster", "import", "--group", "year-9-nowhere", path)
    assert result.exit_code == 2 and "there is no group 'year-9-nowhere'" in result.stderr


def test_roster_carer_emails_get_personal_invitations(app, school, db, browser, tmp_path) -> None:
    """Carers listed in the file are emailed a personal link that takes them straight to their details."""
    path = write_csv(tmp_path, "display_name,carer_emails\nAmelia R.,mum@example.com;dad@example.com\nNoah T.,\n")
    result = cli(app, "roster", "import", "--group", "year-2-ash", path)
    assert result.exit_code == 0, result.output
    invitations = outbox(db, kind="carer-invitation")
    assert sorted(m.to_addr for m in invitations) == ["dad@example.com", "mum@example.com"]
    for message in invitations:
        assert "Amelia R." in message.body_text and "Year 2 Ash" in message.body_text
        assert "Elm Primary School" in message.body_text
    link = link_in(next(m for m in invitations if m.to_addr == "mum@example.com"))
    assert link.startswith(f"{BASE_URL}/join/year-2-ash/invitation/")
    opened = browser.get(link)
    assert opened.status_code == 302 and opened.headers["Location"].endswith("/join/year-2-ash/details")
    details = browser.get("/join/year-2-ash/details")
    assert details.status_code == 200 and "mum@example.com" in details.get_data(as_text=True)
    db.commit()
    assert count(db, CarerInvitation) == 2


# --- outbox send -------------------------------------------------------------------------------


def queue_set_password_mail(app, email: str = "rep@elm.example") -> None:
    """Queue one message the way a real command does."""
    result = cli(app, "user", "add", "--email", email, "--role", "staff", "--school", "elm-primary")
    assert result.exit_code == 0, result.output


def test_outbox_send_writes_files_and_marks_sent(app, school, db, tmp_path) -> None:
    """In development `outbox send` writes each queued email as an .eml file and never sends it twice."""
    queue_set_password_mail(app, "one@elm.example")
    queue_set_password_mail(app, "two@elm.example")
    result = cli(app, "outbox", "send")
    assert result.exit_code == 0, result.output
    assert "Sent 2, failed 0" in result.output
    files = sorted(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))
    assert len(files) == 2
    parsed = [message_from_bytes(f.read_bytes(), policy=default_policy) for f in files]
    assert sorted(m["To"] for m in parsed) == ["one@elm.example", "two@elm.example"]
    assert all(m["Subject"] == "Choose your Classgate password" for m in parsed)
    assert all("/account/set-password/" in m.get_content() for m in parsed)
    for message in outbox(db):
        assert message.sent_at is not None and message.attempts == 1 and message.last_error is None
    again = cli(app, "outbox", "send")
    assert again.exit_code == 0 and "Sent 0, failed 0" in again.output
    assert len(list(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))) == 2


def test_outbox_survives_a_mail_server_outage(app, school, db, smtp_server, closed_port) -> None:
    """While the mail server is down nothing is lost: messages wait, say why, and go once it is back."""
    queue_set_password_mail(app)
    [queued] = outbox(db)
    first_due = queued.next_attempt_at

    smtp_settings(app, "127.0.0.1", closed_port)
    failed = cli(app, "outbox", "send")
    assert failed.exit_code == 1
    assert "Sent 0, failed 1" in failed.output
    [message] = outbox(db)
    assert message.sent_at is None and message.failed_at is None
    assert message.attempts == 1
    assert message.last_error and "refused" in message.last_error.lower()
    assert message.next_attempt_at > first_due and message.next_attempt_at > utcnow()
    assert message.claimed_until is None
    assert not Path(app.config["OUTBOX_DIR"]).exists() or not list(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))

    # Before it is due again, a run leaves it alone.
    waiting = cli(app, "outbox", "send")
    assert waiting.exit_code == 0 and "Sent 0, failed 0" in waiting.output
    assert outbox(db)[0].attempts == 1

    # Time passes and the mail server comes back.
    make_due()
    smtp_settings(app, "127.0.0.1", smtp_server.server_address[1])
    sent = cli(app, "outbox", "send")
    assert sent.exit_code == 0, sent.output
    assert "Sent 1, failed 0" in sent.output
    [message] = outbox(db)
    assert message.sent_at is not None and message.attempts == 2 and message.last_error is None
    [(recipients, raw)] = smtp_server.received
    assert recipients == ["rep@elm.example"]
    email = message_from_bytes(raw, policy=default_policy)
    assert email["Subject"] == "Choose your Classgate password"
    assert "/account/set-password/" in email.get_content()

    assert "Sent 0" in cli(app, "outbox", "send").output
    assert len(smtp_server.received) == 1


def test_long_outage_does_not_give_up_on_mail(app, school, db, closed_port) -> None:
    """A mail server that stays down for many attempts still leaves every message queued for later."""
    queue_set_password_mail(app)
    smtp_settings(app, "127.0.0.1", closed_port)
    attempts = app.config["MAIL_MAX_ATTEMPTS"] + 3
    for _ in range(attempts):
        make_due()
        assert cli(app, "outbox", "send").exit_code == 1
    [message] = outbox(db)
    assert message.attempts == attempts
    assert message.sent_at is None and message.failed_at is None
    # It is tried again within the hour, not days later.
    assert utcnow() < message.next_attempt_at <= utcnow() + timedelta(hours=1)


def make_due() -> None:
    """Let time pass until every queued message is due again."""
    with session_scope() as session:
        session.exec(update(OutboxMessage).values(next_attempt_at=utcnow()))


@pytest.mark.parametrize(
    "reply, gives_up",
    [("550 5.1.1 No such mailbox", True), ("451 4.3.0 Try again later", False)],
)
def test_only_a_permanent_refusal_gives_up(app, school, db, smtp_server, reply: str, gives_up: bool) -> None:
    """A mailbox the server says does not exist is given up on after the set attempts; 'try later' never is."""
    queue_set_password_mail(app)
    smtp_settings(app, "127.0.0.1", smtp_server.server_address[1])
    app.config["MAIL_MAX_ATTEMPTS"] = 2
    smtp_server.rcpt_reply = reply
    for _ in range(3):
        make_due()
        cli(app, "outbox", "send")
    [message] = outbox(db)
    assert message.sent_at is None and reply[:3] in message.last_error
    if gives_up:
        assert message.attempts == 2 and message.failed_at is not None
    else:
        assert message.attempts == 3 and message.failed_at is None and message.next_attempt_at > utcnow()
    assert smtp_server.received == []


# --- ledger verify -----------------------------------------------------------------------------


def test_ledger_verify_exits_0_when_intact(app, journey) -> None:
    """After a parent joins, `ledger verify` reports the chain intact and exits 0."""
    journey.through_agree()
    result = cli(app, "ledger", "verify")
    assert result.exit_code == 0, result.output
    assert re.search(r"elm-primary: intact, 6 entries, head [0-9a-f]{64}", result.output)


def test_ledger_verify_unknown_school(app, school) -> None:
    """Asking about a school that does not exist is an error, not a silent pass."""
    result = cli(app, "ledger", "verify", "--school", "nowhere")
    assert result.exit_code == 2 and "there is no school 'nowhere'" in result.stderr


def test_set_password_link_expires_after_48_hours(app, school, db, browser, monkeypatch) -> None:
    """A set-password link opened two days later says it has expired and sets nothing."""
    from itsdangerous.timed import TimestampSigner

    assert cli(app, "user", "add", "--email", "rep@elm.example", "--role", "staff", "--school",
               "elm-primary").exit_code == 0
    link = link_in(outbox(db, kind="set-password")[0])
    later = TimestampSigner.get_timestamp(TimestampSigner("x")) + 49 * 3600
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    response = browser.get(link)
    assert response.status_code == 410
    assert "This link has expired" in text_of(response)
    token = browser.hidden_fields(browser.get("/login").get_data(as_text=True))["csrf_token"]
    posted = browser.client.post(browser.path(link), data={"csrf_token": token, "password": "x" * 20,
                                                           "confirm": "x" * 20})
    assert posted.status_code == 410
    db.commit()
    assert db.exec(select(User)).one().password_hash is None
