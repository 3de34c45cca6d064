"""Links that cannot be used any more, and addresses that were never right, each get a page that says what to do."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from membership import invites
from membership.db import session_scope
from membership.models import Invite, Membership, Person, utcnow

from .journeys import heading
from .screens import PHONE, expect


def membership_of(session, email: str) -> Membership:
    """The one membership of the parent with this email."""
    person = session.exec(select(Person).where(Person.email == email)).one()
    return session.exec(select(Membership).where(Membership.person_id == person.id)).one()


def test_expired_cancelled_and_broken_links_say_what_to_do_next(open_screen, sign_up, db):
    """An invite past its 72 hours, a cancelled one, a mangled one, a bad email link and an unknown group."""
    expired = sign_up("kim@example.com", name="Kim Parent", child="Noah T.")
    cancelled = sign_up("lee@example.com", name="Lee Parent", child="Freya M.")
    with session_scope() as session:
        # Kim waited too long: the link's time is up.
        kim = membership_of(session, "kim@example.com")
        invite = session.exec(select(Invite).where(Invite.membership_id == kim.id)).one()
        invite.expires_at = utcnow() - timedelta(minutes=1)
        session.add(invite)
        # Lee's link was cancelled by a class rep.
        invites.revoke(session, membership_of(session, "lee@example.com"), actor="system", channel="web")
    phone = open_screen("parent", PHONE)
    page = phone.page

    phone.visit(expired, "invite link expired", 410)
    expect(heading(phone)).to_have_text("This link has expired")
    expect(page.get_by_text("Ask the class rep to send you a new one.")).to_be_visible()
    expect(page.get_by_role("button", name="Open the group")).to_have_count(0)

    phone.visit(cancelled, "invite link cancelled", 410)
    expect(heading(phone)).to_have_text("This link has been cancelled")
    expect(page.get_by_role("button", name="Open the group")).to_have_count(0)

    phone.visit(expired[:-6], "invite link cut short", 404)
    expect(heading(phone)).to_have_text("This link is not valid")

    phone.visit("/join/verify/not-a-real-link", "email link not valid", 404)
    expect(heading(phone)).to_have_text("This link is not valid")

    phone.visit("/join/year-9-nowhere", "no such group", 404)
    expect(heading(phone)).to_have_text("Page not found")
