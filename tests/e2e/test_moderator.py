"""A class rep signs in, accepts the moderator notice, approves a waiting parent, then removes them."""

from __future__ import annotations

import re

from membership.models import Role

from ..conftest import link_in, outbox
from .journeys import confirm_and_agree, enter_code, flash, give_details, heading, press, sign_in
from .screens import DESKTOP, PHONE, expect

REP = "rep@elm.example"
EMAIL = "sam@example.com"
CHAT_URL = "https://chat.whatsapp.com/BirchChat"


def test_a_moderator_approves_a_waiting_parent_and_removes_a_member(
    open_screen, make_account, make_code, db, javascript
):
    """What the rep sees at each step, and what the parent sees: waiting, the chat, then no way back in.

    With JavaScript the rep works at desktop width; without it, on a phone, so each page is seen at both.
    """
    make_account(REP, Role.MODERATOR, ("year-4-birch",), accept_notice=False)
    parent = open_screen("parent", PHONE)
    enter_code(parent, "year-4-birch", make_code("year-4-birch", "Amelia R."))
    give_details(parent, EMAIL)
    confirm_and_agree(parent, db, EMAIL, "waiting for the moderator")
    expect(parent.page.get_by_text("Waiting for the moderator")).to_be_visible()

    rep = open_screen("moderator", DESKTOP if javascript else PHONE)
    page = rep.page
    sign_in(rep, REP, "moderator notice")
    expect(heading(rep)).to_have_text("Before you start: the moderator notice")
    press(rep, "Accept and continue", "moderator notice, not ticked", 400)
    expect(page.locator(".error-summary")).to_contain_text("Tick the box to accept the moderator notice")
    page.get_by_role("checkbox").check()
    press(rep, "Accept and continue", "your groups")
    expect(flash(rep)).to_contain_text("You have accepted the moderator notice")
    waiting = page.locator(".card").filter(has_text="Year 4 Birch").locator("div", has_text="Waiting for you")
    expect(waiting.locator("dd")).to_have_text("1")

    rep.follow(page.get_by_role("link", name="Year 4 Birch"), "requests")
    request = page.locator(".card").filter(has=page.get_by_role("heading", name="Sam Parent"))
    expect(request).to_contain_text("Printed code")
    expect(request).to_contain_text("Amelia R.")
    rep.follow(request.get_by_role("button", name="Approve"), "request approved")
    expect(flash(rep)).to_contain_text("Sam Parent is approved. We have emailed them their link.")
    expect(page.get_by_text("No requests are waiting.")).to_be_visible()

    parent.visit(link_in(outbox(db, to=EMAIL, kind="invite")[-1]), "open the group")
    press(parent, "Open the group", "the chat")
    assert parent.page.url == CHAT_URL

    rep.follow(page.get_by_role("link", name=re.compile(r"^Members")), "members")
    member = page.locator(".member").filter(has=page.get_by_role("heading", name="Sam Parent"))
    expect(member).to_contain_text("Link used – expect a join request from Sam Parent")
    rep.follow(member.get_by_role("link", name="Remove Sam Parent from the group"), "remove a member")
    press(rep, "Remove Sam Parent", "remove, no rule chosen", 400)
    expect(page.locator(".error-summary")).to_contain_text("Select which part of the code of conduct was broken")
    page.get_by_label("Abusive or threatening messages").check()
    page.get_by_label(re.compile("^Note")).fill("Threatening messages to another parent on 3 March.")
    press(rep, "Remove Sam Parent", "now remove them in the chat")
    expect(flash(rep)).to_contain_text("Sam Parent has been removed from the group on Classgate.")
    expect(heading(rep)).to_contain_text("Now remove Sam Parent")
    press(rep, re.compile("Done: they are out of the chat"), "members after the removal")
    expect(flash(rep)).to_contain_text("Sam Parent is marked as taken out of the chat.")
    expect(page.get_by_role("heading", name="Left or removed (1)")).to_be_visible()
    expect(page.get_by_text("Nobody has joined yet.")).to_be_visible()

    # Sam cannot come back, even with another child's code.
    enter_code(parent, "year-4-birch", make_code("year-4-birch", "Noah T."))
    give_details(parent, EMAIL, page_name="cannot rejoin", status=403)
    expect(heading(parent)).to_have_text("You cannot rejoin this group")
