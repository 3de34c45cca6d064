"""Who may open what: every route in the URL map, for every kind of visitor, with the answer each should get.

The visitors are someone signed out, a parent signed in at /me/, the moderator of group A, the
moderator of group B (in the same school), a member of staff of school X and one of school Y.
Every URL names school X's and group A's real things (group A's slug, a member of it, a child
in it, school X's concern…), so group B's moderator and school Y's staff are asking for someone
else's. A route missing from MATRIX fails the test by name, so no page can be added unseen.

POSTs carry a valid CSRF token and nothing else (unless an entry gives a body), so the answer
is about who is asking: 400 from a signed-in visitor means the form was reached and found empty,
never a CSRF refusal (checked). A POST that was turned away must have changed nothing (no
ledger entry, no email); one that was let through may have changed things, so the next case
gets a freshly built world.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import pytest
from argon2 import PasswordHasher
from flask import Flask
from sqlalchemy import func
from sqlmodel import Session, SQLModel, select

from membership import codes, create_app, journey, letters, moderation, parents, passwords, policies, schools
from membership.db import session_scope
from membership.extensions import limiter
from membership.models import Concern, DocumentKind, LedgerEntry, OutboxMessage, ParentSignIn, Role, Verification
from membership.moderation import members
from membership.staff import roster

from .conftest import BASE_URL, PASSWORD, Browser, PhoneClient, link_in, outbox, reset_postgres, text_of

ANONYMOUS, PARENT, MODERATOR_A, MODERATOR_B, STAFF_X, STAFF_Y = ROLES = (
    "anonymous", "parent", "moderator of group A", "moderator of group B", "staff of school X", "staff of school Y",
)
GROUP_A, GROUP_B = "year-2-ash", "year-4-birch"
PARENT_EMAIL = "sam.parent@example.com"
ACCOUNTS = {
    MODERATOR_A: "rep.ash@example.com",
    MODERATOR_B: "rep.birch@example.com",
    STAFF_X: "office@elm.example",
    STAFF_Y: "office@pine.example",
}


# --- The expected answers ------------------------------------------------------------------------
# Each row is the status for: anonymous, parent, moderator A, moderator B, staff X, staff Y.


def everyone(status: int) -> tuple[int, ...]:
    """A public page (or a one-time link, where holding the token is the permission): the same for all."""
    return (status,) * 6


def any_staff(status: int) -> tuple[int, ...]:
    """A staff page about the signed-in member of staff's own school: any staff member gets it."""
    return (302, 302, 404, 404, status, status)


def staff_of_x(status: int) -> tuple[int, ...]:
    """A staff page about one of school X's things: school Y's staff are told it is not there."""
    return (302, 302, 404, 404, status, 404)


def any_moderator(status: int) -> tuple[int, ...]:
    """A moderator's own page (their dashboard, the notice): moderators only."""
    return (302, 302, status, status, 404, 404)


def moderator_of_a(status: int) -> tuple[int, ...]:
    """A page of group A's console: its moderator only; group B's moderator and all staff get 404."""
    return (302, 302, status, 404, 404, 404)


def signed_in_parent(status: int) -> tuple[int, ...]:
    """A parent's own page: anyone not signed in at /me/ (staff and moderators too) is sent to /me/."""
    return (303, status, 303, 303, 303, 303)


@dataclass(frozen=True)
class Entry:
    """What one route answers each visitor.

    values: URL arguments naming another of the world's things than DEFAULTS does; query: a query
    string naming one of them; data: a POST body, beyond the CSRF token, naming one of them.
    """

    get: tuple[int, ...] | None = None
    post: tuple[int, ...] | None = None
    values: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)


MATRIX: dict[str, Entry] = {
    # Public pages and files.
    "web.home": Entry(get=everyone(200)),
    "web.healthz": Entry(get=everyone(200)),
    "static": Entry(get=everyone(200)),
    "auth.login": Entry(get=everyone(200), post=everyone(400)),
    "auth.logout": Entry(post=everyone(303)),
    "concerns.raise_concern": Entry(get=everyone(200), post=everyone(400), values={"slug": "school_x"}),
    "concerns.sent": Entry(get=everyone(302), values={"slug": "school_x"}),
    # The parent journey: public, and what a page shows depends on this browser's own progress.
    "join.join_group": Entry(get=everyone(200), post=everyone(400)),
    "join.no_code": Entry(get=everyone(200), post=everyone(400)),
    "join.your_details": Entry(get=everyone(302), post=everyone(302)),
    "join.check_email": Entry(get=everyone(302), post=everyone(302)),
    "join.agree": Entry(get=everyone(302), post=everyone(302)),
    "join.waiting": Entry(get=everyone(302)),
    "join.done": Entry(get=everyone(302)),
    # One-time links: whoever holds the token may use it, signed in as anyone or not at all.
    "join.use_invitation": Entry(get=everyone(302), values={"token": "invitation"}),
    "join.verify_email": Entry(get=everyone(302), values={"token": "verify"}),
    "join.reagree": Entry(get=everyone(200), post=everyone(400), values={"token": "reagree"}),
    "invite.show_invite": Entry(get=everyone(200), values={"token": "invite"}),
    "invite.redeem_invite": Entry(post=everyone(303), values={"token": "invite"}),
    "account.set_password": Entry(get=everyone(200), post=everyone(400), values={"token": "set_password"}),
    "me.sign_in": Entry(get=everyone(200), values={"token": "sign_in"}),
    "me.use_sign_in_link": Entry(post=everyone(303), values={"token": "sign_in"}),
    # Parents' own pages.
    "me.index": Entry(get=everyone(200), post=everyone(400)),
    "me.check_email": Entry(get=everyone(200)),
    "me.sign_out": Entry(post=everyone(303)),
    "me.download_data": Entry(get=signed_in_parent(200)),
    "me.erase": Entry(get=signed_in_parent(200), post=signed_in_parent(400)),
    "me.leave": Entry(get=signed_in_parent(200), post=signed_in_parent(303)),
    "me.reagree": Entry(get=signed_in_parent(200), post=signed_in_parent(400)),
    # The moderators' console.
    "moderate.dashboard": Entry(get=any_moderator(200)),
    "moderate.notice": Entry(get=any_moderator(200), post=any_moderator(400)),
    "moderate.group_page": Entry(get=moderator_of_a(200)),
    "moderate.list_members": Entry(get=moderator_of_a(200)),
    "moderate.chat_link": Entry(get=moderator_of_a(200), post=moderator_of_a(400)),
    "moderate.approve_request": Entry(post=moderator_of_a(303), values={"membership_id": "pending"}),
    "moderate.vouch_request": Entry(post=moderator_of_a(303), values={"membership_id": "pending"}),
    "moderate.reject_request": Entry(get=moderator_of_a(200), post=moderator_of_a(400),
                                     values={"membership_id": "pending"}),
    "moderate.mark_seen": Entry(post=moderator_of_a(303)),
    "moderate.remove_member": Entry(get=moderator_of_a(200), post=moderator_of_a(400)),
    "moderate.removed_member": Entry(get=moderator_of_a(200), values={"membership_id": "removed"}),
    "moderate.taken_out_of_chat": Entry(post=moderator_of_a(303)),
    "moderate.reissue_invite": Entry(post=moderator_of_a(303)),
    "moderate.revoke_invite": Entry(post=moderator_of_a(303)),
    # The staff console: pages about the school itself, then pages naming one of school X's things.
    "school.dashboard": Entry(get=any_staff(200)),
    "school.list_groups": Entry(get=any_staff(200)),
    "school.new_group": Entry(get=any_staff(200), post=any_staff(400)),
    "school.roster": Entry(get=any_staff(200)),
    "school.import_roster": Entry(post=any_staff(400)),
    "school.list_policies": Entry(get=any_staff(200)),
    "school.policy_history": Entry(get=any_staff(200)),
    "school.publish_policy": Entry(get=any_staff(200), post=any_staff(400)),
    "school.concerns": Entry(get=any_staff(200)),
    "school.concern_settings": Entry(get=any_staff(200), post=any_staff(400)),
    "school.ledger_check": Entry(get=any_staff(200), post=any_staff(200)),
    "school.records": Entry(get=staff_of_x(200), query={"group": "group_a"}),
    "school.export_records": Entry(get=staff_of_x(200), query={"group": "group_a"}),
    # The letters to print are named by a token sealed for one member of staff at one school: anyone
    # else's is a bad request, and says nothing about what it names.
    "school.letters_pdf": Entry(post=(302, 302, 404, 404, 200, 400), data={"letters": "letters"}),
    "school.show_policy": Entry(get=staff_of_x(200)),
    "school.policy_diff": Entry(get=staff_of_x(200)),
    "school.edit_group": Entry(get=staff_of_x(200), post=staff_of_x(400)),
    "school.appoint_moderator": Entry(get=staff_of_x(200), post=staff_of_x(400)),
    "school.stand_down": Entry(post=staff_of_x(303)),
    "school.child_page": Entry(get=staff_of_x(200)),
    "school.regenerate_code": Entry(post=staff_of_x(200)),
    "school.set_uses": Entry(post=staff_of_x(400)),
    "school.invite_carers": Entry(post=staff_of_x(400)),
    "school.block_carer": Entry(post=staff_of_x(400)),
    "school.lift_block": Entry(post=staff_of_x(303), data={"block_id": "block"}),
    "school.show_concern": Entry(get=staff_of_x(200), post=staff_of_x(400)),
    "school.person_record": Entry(get=staff_of_x(200)),
    "school.new_incident": Entry(get=staff_of_x(200), post=staff_of_x(400)),
}

# Where a visitor is sent to sign in, as staff or moderator or as a parent. A POST answered with a
# redirect there either was turned away or ended the phone's own session (each case has its own
# phone), so it changed nothing the next cases rely on unless the database shows it did.
SIGN_IN_PAGES = {"/login", "/me/"}

# What a URL argument names unless an entry says otherwise: school X's and group A's things.
DEFAULTS = {
    "slug": "group_a", "membership_id": "member", "child_id": "child", "user_id": "moderator_a",
    "concern_id": "concern", "kind": "document", "number": "policy_number", "filename": "stylesheet",
}


# --- The world: two schools, their people and one-time links ----------------------------------------


@dataclass
class World:
    """A freshly built app and database, and its things by name."""

    app: Flask
    things: dict[str, object]
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    spoilt: bool = False

    def phone(self, role: str) -> tuple[Browser, str]:
        """A phone signed in as this visitor, and a valid CSRF token for its session.

        Each case gets a phone of its own carrying the same session cookie, so whatever one page
        puts in a browser's session (progress through a journey, say) never changes the next case.
        """
        if role not in self.sessions:
            phone = Browser(self.app.test_client())
            if role == PARENT:
                phone.submit(self.things["own_sign_in"])
                assert PARENT_EMAIL in text_of(phone.get("/me/")), "the parent could not sign in"
            elif role in ACCOUNTS:
                response = phone.submit("/login", {"email": ACCOUNTS[role], "password": PASSWORD})
                assert response.status_code == 303, f"{role} could not sign in"
            # A signed-out visitor has a session too, once a page with a form has given it a CSRF token.
            token = Browser.hidden_fields(phone.get("/login").get_data(as_text=True))["csrf_token"]
            self.sessions[role] = (phone.client.get_cookie("session").value, token)
        cookie, token = self.sessions[role]
        phone = Browser(self.app.test_client())
        phone.client.set_cookie("session", cookie)
        return phone, token

    def activity(self) -> tuple[int, ...]:
        """What a request that changes things leaves behind: ledger entries, emails, used and ended sign-in links."""
        with Session(self.app.extensions["classgate_engine"]) as session:
            def count(model, *where) -> int:
                """How many rows of a table match."""
                return session.exec(select(func.count()).select_from(model).where(*where)).one()

            return (count(LedgerEntry), count(OutboxMessage), count(ParentSignIn, ParentSignIn.used_at.is_not(None)),
                    count(ParentSignIn, ParentSignIn.signed_out_at.is_not(None)))

    def close(self) -> None:
        """Let go of the database."""
        self.app.extensions["classgate_engine"].dispose()


def last_segment(session: Session, to: str, kind: str) -> str:
    """The token at the end of the link in the newest email of a kind to an address."""
    return path_of(session, to, kind).rsplit("/", 1)[-1]


def path_of(session: Session, to: str, kind: str) -> str:
    """The path of the link in the newest email of a kind to an address."""
    return urlsplit(link_in(outbox(session, to=to, kind=kind)[-1])).path


def joined(session: Session, group, code: str, name: str, email: str):
    """A parent who gave a child's code and their details, confirmed their email and agreed: in, with a link."""
    membership = start(session, group, journey.Proof(Verification.CODE, code_id=codes.find(session, code, group.id).id),
                       name, email)
    journey.verify_email(session, journey.verification_token(membership))
    coc, notice = journey.current_documents(session, group.school_id)
    return membership, journey.agree(session, membership, coc.id, notice.id)


def start(session: Session, group, proof: journey.Proof, name: str, email: str):
    """A parent's start in a group: their details given, their email not yet confirmed."""
    return journey.start(session, group, proof, name=name, relationship="parent", email=email, mobile=None)


def populate() -> dict[str, object]:
    """School X with groups A and B, school Y, their staff and moderators, parents at each step, and links."""
    with session_scope() as session:
        school_x = schools.create_school(session, "elm-primary", "Elm Primary School", "office@elm.example")
        group_a = schools.create_group(session, school_x, GROUP_A, "Year 2 Ash",
                                       chat_url="https://chat.whatsapp.com/AshChat")
        group_b = schools.create_group(session, school_x, GROUP_B, "Year 4 Birch", requires_approval=True,
                                       chat_url="https://chat.whatsapp.com/BirchChat")
        school_y = schools.create_school(session, "pine-primary", "Pine Primary School", "office@pine.example")
        schools.create_group(session, school_y, "year-1-pine", "Year 1 Pine",
                             chat_url="https://chat.whatsapp.com/PineChat")
        users = {}
        for role, group in ((MODERATOR_A, group_a), (MODERATOR_B, group_b)):
            users[role] = schools.create_user(session, school_x, ACCOUNTS[role], Role.MODERATOR, name=role,
                                              groups=[group], password=PASSWORD)
            moderation.accept_notice(session, users[role], moderation.current_notice(session, school_x.id).id)
        for role, school in ((STAFF_X, school_x), (STAFF_Y, school_y)):
            users[role] = schools.create_user(session, school, ACCOUNTS[role], Role.STAFF, password=PASSWORD)

        amelia = schools.add_child(session, group_a, "Amelia R.")
        ben = schools.add_child(session, group_a, "Ben T.")
        # Group A's member: the parent who signs in at /me/, holding an unused link into the chat.
        member, agreed = joined(session, group_a, amelia.code, "Sam Parent", PARENT_EMAIL)
        # A member the moderator removed.
        removed, _ = joined(session, group_a, ben.code, "Lee Removed", "lee.removed@example.com")
        members.remove(session, removed, users[MODERATOR_A], "abuse", None)
        # A parent with no code, waiting for group A's moderator to vouch for them.
        pending = start(session, group_a, journey.Proof(Verification.NONE, claimed_child_name="Cara W."),
                        "Pat Waiting", "pat.waiting@example.com")
        journey.verify_email(session, journey.verification_token(pending))
        journey.agree(session, pending, *(d.id for d in journey.current_documents(session, school_x.id)))
        # A parent who has given their details and not yet confirmed their email.
        unconfirmed = start(session, group_a, journey.Proof(Verification.CODE, code_id=codes.find(
            session, amelia.code, group_a.id).id), "Kim New", "kim.new@example.com")
        # A material change: group A's member must agree again.
        version = policies.publish(session, school_x.id, DocumentKind.CODE_OF_CONDUCT, "Be kind. Be brief.",
                                   material=True, change_note="Shorter.")
        schools.invite_carer(session, group_a, amelia.child, "gran@example.com")
        blocked = roster.block_carer(session, amelia.child, group_a, users[STAFF_X], "ex@example.com", "Court order")
        newcomer = schools.create_user(session, school_x, "new.rep@example.com", Role.MODERATOR, groups=[group_a])
        schools.send_set_password(session, newcomer)
        concern = Concern(school_id=school_x.id, group_id=group_a.id, what_happened="Unkind messages last night.")
        session.add(concern)
        # Two sign-in links: one the parent's phone uses, one for the matrix's URLs.
        parents.send_link(session, PARENT_EMAIL)
        own_sign_in = path_of(session, PARENT_EMAIL, "parent-sign-in")
        parents.send_link(session, PARENT_EMAIL)
        printed = letters.Issued(amelia.child, group_a, codes.normalise(amelia.code), 2)
        return {
            "school_x": school_x.slug, "group_a": group_a.slug, "child": amelia.child.id,
            "member": member.id, "removed": removed.id, "pending": pending.id, "concern": concern.id,
            "moderator_a": users[MODERATOR_A].id, "block": blocked.block.id,
            "document": DocumentKind.CODE_OF_CONDUCT.value, "policy_number": version.number,
            "stylesheet": "classgate.css",
            "letters": letters.seal(school_x.id, users[STAFF_X].id, [printed]),
            "invite": agreed.invite_token,
            "verify": journey.verification_token(unconfirmed),
            "reagree": urlsplit(journey.reagree_link(member)).path.rsplit("/", 1)[-1],
            "invitation": last_segment(session, "gran@example.com", "carer-invitation"),
            "set_password": last_segment(session, "new.rep@example.com", "set-password"),
            "sign_in": last_segment(session, PARENT_EMAIL, "parent-sign-in"),
            "own_sign_in": own_sign_in,
        }


@pytest.fixture(scope="module")
def cheap_passwords():
    """Argon2 at its lightest while these tests sign in dozens of times (the hash records its own cost)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        yield


@pytest.fixture
def build_world(tmp_path, cheap_passwords) -> Iterator[Callable[[], World]]:
    """A factory of fresh worlds, each with its own empty database (the one before is let go)."""
    built: list[World] = []

    def build() -> World:
        if built:
            built[-1].close()
        url = os.environ.get("TEST_DATABASE_URL")
        if url:
            reset_postgres(url)
        else:
            url = f"sqlite:///{tmp_path / f'world-{len(built)}.db'}"
        app = create_app({
            "ENV_NAME": "testing", "TESTING": True, "DATABASE_URL": url, "BASE_URL": BASE_URL,
            "OUTBOX_DIR": str(tmp_path / "outbox"), "MAIL_SEND_INLINE": False, "MAIL_WRITE_FILES": False,
            "SMTP_HOST": "",
        })
        app.test_client_class = PhoneClient
        SQLModel.metadata.create_all(app.extensions["classgate_engine"])
        with app.app_context():
            world = World(app, populate())
        built.append(world)
        return world

    yield build
    if built:
        built[-1].close()


# --- Running the cases ----------------------------------------------------------------------------------


def url_for_rule(world: World, rule, entry: Entry) -> str:
    """The rule's URL naming the world's things, with the entry's query string."""
    names = {**DEFAULTS, **entry.values}
    unknown = rule.arguments - names.keys()
    assert not unknown, f"{rule.rule}: say in DEFAULTS or the entry what {sorted(unknown)} should name"
    values = {arg: world.things[names[arg]] for arg in rule.arguments}
    with world.app.test_request_context():
        path = world.app.url_map.bind("classgate.test").build(rule.endpoint, values)
    query = {key: world.things[name] for key, name in entry.query.items()}
    return f"{path}?{urlencode(query)}" if query else path


def cases(app: Flask) -> list[tuple[object, str, Entry]]:
    """Every (rule, method) to try, in URL order."""
    found = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        entry = MATRIX[rule.endpoint]
        for method in ("GET", "POST"):
            if method in rule.methods:
                found.append((rule, method, entry))
    return found


def test_every_route_has_an_entry_in_the_matrix(config):
    """A route added without saying who may open it fails here, by name; so does an entry for a route now gone."""
    app = create_app(config)
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(f"{rule.rule} ({rule.endpoint})" for rule in app.url_map.iter_rules()
                     if rule.endpoint not in MATRIX)
    assert not missing, "routes with no entry in MATRIX: " + ", ".join(missing)
    assert not sorted(MATRIX.keys() - endpoints), "entries in MATRIX for no route"
    for rule in app.url_map.iter_rules():
        entry = MATRIX[rule.endpoint]
        for method, row in (("GET", entry.get), ("POST", entry.post)):
            accepted = method in rule.methods
            assert (row is not None) == accepted, f"{rule.rule} ({rule.endpoint}): {method} " + (
                "accepted but has no row" if accepted else "has a row but is not accepted")
            assert row is None or len(row) == len(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_each_visitor_gets_the_answer_the_matrix_gives(build_world, role):
    """Every route, GET and POST, for one kind of visitor; all differences are reported together."""
    world = build_world()
    column = ROLES.index(role)
    wrong = []
    for rule, method, entry in cases(world.app):
        if world.spoilt:
            world = build_world()
        expected = (entry.get if method == "GET" else entry.post)[column]
        url = url_for_rule(world, rule, entry)
        limiter.reset()
        phone, token = world.phone(role)
        if method == "GET":
            response = phone.client.get(url)
        else:
            before = world.activity()
            data = {"csrf_token": token, **{key: world.things[name] for key, name in entry.data.items()}}
            response = phone.client.post(url, data=data)
            if response.mimetype == "text/html":
                assert "For your security, this page had expired" not in text_of(response), f"CSRF refused: {url}"
            changed = world.activity() != before
            sent_to = urlsplit(response.location or "").path
            if changed and (response.status_code >= 400 or sent_to == "/login"):
                wrong.append(f"POST {url}: turned away with {response.status_code} but changed something")
            # Anything else let through may have changed what the next cases rely on. (Classgate answers
            # a POST that did its work with 200 or 303; a 302 sends the visitor to an earlier step.)
            let_through = response.status_code < 300 or (response.status_code == 303 and sent_to not in SIGN_IN_PAGES)
            world.spoilt = changed or let_through
        response.close()  # a static file's response holds the file open until closed
        if response.status_code != expected:
            where = response.headers.get("Location", "")
            wrong.append(f"{method} {url}: expected {expected}, got {response.status_code} {where}".rstrip())
    assert not wrong, f"{role}:\n" + "\n".join(wrong)
