"""A parent on a phone, and a parent with the keyboard alone, from the join page to the group chat."""

from __future__ import annotations

import re

from ..conftest import link_in, outbox
from .screens import DESKTOP, PHONE, expect

EMAIL = "sam@example.com"
CHAT_URL = "https://chat.whatsapp.com/AshChat"
WRONG_CODE = "ZZZZ-ZZZZ-ZZZZ"


def test_a_parent_on_a_phone_goes_from_the_join_page_to_the_chat(open_screen, make_code, db):
    """Wrong code, missing details and unticked boxes are explained; then the link opens the chat, once."""
    code = make_code("year-2-ash", "Amelia R.")
    phone = open_screen("parent", PHONE)
    page = phone.page

    phone.visit("/join/year-2-ash", "join page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Join the Year 2 Ash parents’ group")
    expect(page.get_by_text("Joining is voluntary.")).to_be_visible()

    code_box = page.get_by_label("Code from the school letter")
    code_box.fill(WRONG_CODE)
    phone.follow(page.get_by_role("button", name="Continue"), "join page, wrong code", 400)
    expect(page.locator(".error-summary")).to_contain_text("That code was not accepted")
    expect(page.locator(".error-summary")).to_be_focused()
    expect(page).to_have_title(re.compile("^Error: "))

    # As a tired parent types it: small letters, spaces for dashes.
    code_box.fill(code.lower().replace("-", " "))
    phone.follow(page.get_by_role("button", name="Continue"), "your details")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")

    phone.follow(page.get_by_role("button", name="Continue"), "your details, nothing filled in", 400)
    summary = page.locator(".error-summary")
    expect(summary.get_by_role("link")).to_have_count(3)
    expect(summary).to_contain_text("name")
    expect(summary).to_contain_text("parent or carer")
    expect(summary).to_contain_text("email")

    page.get_by_label("Your full name").fill("Sam Parent")
    page.get_by_label("Parent", exact=True).check()
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Mobile number (optional)").fill("07911 123456")
    phone.follow(page.get_by_role("button", name="Continue"), "check your email")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    expect(page.get_by_text(f"We have sent a link to {EMAIL}")).to_be_visible()

    phone.visit(link_in(outbox(db, to=EMAIL, kind="verify-email")[-1]), "agree to the code of conduct")
    expect(page.get_by_role("heading", level=1)).to_have_text("Read and agree")
    expect(page.get_by_role("region", name=re.compile("Code of conduct", re.I))).to_be_visible()
    expect(page.get_by_role("region", name=re.compile("Data notice", re.I))).to_be_visible()
    agree = page.get_by_role("checkbox", name=re.compile("^I agree to follow"))
    acknowledge = page.get_by_role("checkbox", name=re.compile("^I have read the data notice"))
    expect(agree).not_to_be_checked()
    expect(acknowledge).not_to_be_checked()

    phone.follow(page.get_by_role("button", name="Agree and continue"), "agree, nothing ticked", 400)
    expect(page.locator(".error-summary").get_by_role("link")).to_have_count(2)

    agree.check()
    acknowledge.check()
    phone.follow(page.get_by_role("button", name="Agree and continue"), "open the group")
    invite_url = page.url
    assert "/invite/" in invite_url
    expect(page.get_by_role("heading", level=1)).to_have_text("Open the Year 2 Ash group")
    expect(page.get_by_text(CHAT_URL)).to_have_count(0)  # the chat link is never shown before the link is used

    phone.follow(page.get_by_role("button", name="Open the group"), "the chat")
    assert page.url == CHAT_URL
    expect(page.get_by_role("heading", level=1)).to_have_text("WhatsApp group invitation")

    phone.visit(invite_url, "the same link again", 410)
    expect(page.get_by_role("heading", level=1)).to_have_text("This link has already been used")
    expect(page.get_by_role("button", name="Open the group")).to_have_count(0)


def test_a_parent_joins_with_the_keyboard_alone(open_screen, make_code, db):
    """Tab, Space and Enter take a parent from the join page to the chat; error links move the focus to the field."""
    code = make_code("year-2-ash", "Amelia R.")
    screen = open_screen("parent", DESKTOP)
    page, keyboard = screen.page, screen.page.keyboard

    screen.visit("/join/year-2-ash", "join page")
    keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    screen.type_into(page.get_by_label("Code from the school letter"), code)
    screen.follow(lambda: keyboard.press("Enter"), "your details")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your details")

    screen.tab_to(page.get_by_role("button", name="Continue"))
    screen.follow(lambda: keyboard.press("Enter"), "your details, nothing filled in", 400)
    # The error summary takes the focus; its first link is the next stop and moves the focus to its field.
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    keyboard.press("Tab")
    expect(summary.get_by_role("link").first).to_be_focused()
    keyboard.press("Enter")
    name = page.get_by_label("Your full name")
    expect(name).to_be_focused()

    keyboard.type("Sam Parent")
    keyboard.press("Tab")
    expect(page.get_by_label("Parent", exact=True)).to_be_focused()
    keyboard.press("Space")
    expect(page.get_by_label("Parent", exact=True)).to_be_checked()
    screen.type_into(page.get_by_label("Email address"), EMAIL)
    screen.type_into(page.get_by_label("Mobile number (optional)"), "07911 123456")
    screen.tab_to(page.get_by_role("button", name="Continue"))
    screen.follow(lambda: keyboard.press("Enter"), "check your email")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")

    screen.visit(link_in(outbox(db, to=EMAIL, kind="verify-email")[-1]), "agree to the code of conduct")
    agree = page.get_by_role("checkbox", name=re.compile("^I agree to follow"))
    acknowledge = page.get_by_role("checkbox", name=re.compile("^I have read the data notice"))
    screen.press(agree, "Space")
    expect(agree).to_be_checked()
    screen.press(acknowledge, "Space")
    expect(acknowledge).to_be_checked()
    screen.tab_to(page.get_by_role("button", name="Agree and continue"))
    screen.follow(lambda: keyboard.press("Enter"), "open the group")
    expect(page.get_by_role("heading", level=1)).to_have_text("Open the Year 2 Ash group")

    screen.tab_to(page.get_by_role("button", name="Open the group"))
    screen.follow(lambda: keyboard.press("Enter"), "the chat")
    assert page.url == CHAT_URL
