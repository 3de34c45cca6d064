"""Steps several browser tests share: a parent on their phone, a moderator or staff member signing in."""

from __future__ import annotations

import re

from ..conftest import PASSWORD, link_in, outbox
from .screens import Screen, expect


def heading(screen: Screen):
    """The page's main heading."""
    return screen.page.get_by_role("heading", level=1)


def press(screen: Screen, name: str | re.Pattern, page_name: str, status: int = 200):
    """Press the button with this name and check the page it leads to."""
    return screen.follow(screen.page.get_by_role("button", name=name), page_name, status)


def enter_code(screen: Screen, slug: str, code: str, page_name: str = "your details", status: int = 200) -> None:
    """Open a group's join page and give the code from the school letter."""
    screen.visit(f"/join/{slug}", "join page")
    screen.page.get_by_label("Code from the school letter").fill(code)
    press(screen, "Continue", page_name, status)


def give_details(screen: Screen, email: str, name: str = "Sam Parent", page_name: str = "check your email",
                 status: int = 200) -> None:
    """Fill in the details form as a parent and send it."""
    page = screen.page
    page.get_by_label("Your full name").fill(name)
    page.get_by_label("Parent", exact=True).check()
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Mobile number (optional)").fill("07911 123456")
    press(screen, "Continue", page_name, status)


def confirm_and_agree(screen: Screen, db, email: str, page_name: str) -> None:
    """Open the emailed link, tick both statements and agree."""
    screen.visit(link_in(outbox(db, to=email, kind="verify-email")[-1]), "agree to the code of conduct")
    screen.page.get_by_role("checkbox", name=re.compile("^I agree to follow")).check()
    screen.page.get_by_role("checkbox", name=re.compile("^I have read the data notice")).check()
    press(screen, "Agree and continue", page_name)


def sign_in(screen: Screen, email: str, page_name: str) -> None:
    """Sign in at /login as a moderator or member of staff, first mistyping the password."""
    page = screen.page
    screen.visit("/login", "sign in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill("not my password")
    press(screen, "Sign in", "sign in, wrong password", 400)
    expect(page.locator(".error-summary")).to_contain_text("The email address or password is not right")
    page.get_by_label("Password").fill(PASSWORD)
    press(screen, "Sign in", page_name)


def flash(screen: Screen):
    """The message a page shows about what has just been done."""
    return screen.page.get_by_role("status")
