"""The whole parent journey through the browser, as a parent on a phone would do it."""

from __future__ import annotations

import re

from sqlmodel import select

from membership import ledger
from membership.models import LedgerEntry, Membership, Person, School, Status

from .conftest import DETAILS, link_in, outbox, text_of


def test_open_group_journey_lands_on_the_chat_link(journey, browser, db):
    page = browser.get("/join/year-2-ash")
    assert page.status_code == 200
    assert "Joining is voluntary" in text_of(page)
    assert "chat.whatsapp.com" not in page.get_data(as_text=True)

    assert journey.code().status_code == 303
    response = journey.details()
    assert response.status_code == 302 and "/check-email" in response.headers["Location"]
    assert "sam@example.com" in text_of(browser.get("/join/year-2-ash/check-email"))

    verified = journey.verify()
    assert verified.headers["Location"].endswith("/join/year-2-ash/agree")
    agree_page = browser.get("/join/year-2-ash/agree")
    body = text_of(agree_page)
    assert "I agree to follow the Class Group Code of Conduct (version 1," in body
    assert "data controllers for what is shared in the group" in body
    assert 'checked' not in agree_page.get_data(as_text=True)

    agreed = journey.agree()
    assert agreed.status_code == 303
    invite_url = agreed.headers["Location"]
    assert "/invite/" in invite_url

    confirm = browser.get(invite_url)
    assert confirm.status_code == 200
    assert "Open the group" in text_of(confirm)
    assert "AshChat" not in confirm.get_data(as_text=True)
    assert confirm.headers["Referrer-Policy"] == "no-referrer"
    # Looking at the page again (as a link preview would) does not use the link.
    assert browser.get(invite_url).status_code == 200

    opened = browser.submit(invite_url)
    assert opened.status_code == 303
    assert opened.headers["Location"] == "https://chat.whatsapp.com/AshChat"

    again = browser.client.post(invite_url)
    assert again.status_code in (400, 410)
    assert browser.get(invite_url).status_code == 410
    assert "already been used" in text_of(browser.get(invite_url))

    db.commit()
    membership = db.exec(select(Membership)).one()
    assert membership.status == Status.LINK_USED
    person = db.get(Person, membership.person_id)
    assert person.mobile == "+447911123456"
    actions = [e.action for e in db.exec(select(LedgerEntry).order_by(LedgerEntry.seq))]
    assert actions == ["request", "email_verified", "agree", "acknowledge", "approve", "invite_issue", "invite_redeem"]
    invite_mail = outbox(db, to=DETAILS["email"], kind="invite")
    assert len(invite_mail) == 1 and "/invite/" in link_in(invite_mail[0])
    school = db.exec(select(School)).one()
    assert ledger.verify(db, school.id).ok


def test_the_data_notice_links_to_the_page_where_parents_use_their_rights(journey, browser):
    journey.code()
    journey.details()
    journey.verify()
    agree_page = browser.get("/join/year-2-ash/agree").get_data(as_text=True)
    assert re.search(r'<a href="/me/">[^<]*Your class groups[^<]*page</a>', agree_page)
    page = browser.get("/me/")
    assert page.status_code == 200
    assert "Your class groups" in text_of(page)
