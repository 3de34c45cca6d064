"""The moderators' console end to end, with the accounts and codes `flask demo --json` prints."""

from __future__ import annotations

import json

from sqlmodel import select

from membership import ledger
from membership.models import Membership, Person, School, Status

from .conftest import link_in, outbox, sign_in, text_of

WILLOW = "reception-willow"


def join_and_wait(phone, db, code: str, name: str, email: str) -> int:
    """A parent joins the approval-required demo group and waits for the moderator; returns their membership id."""
    assert phone.submit(f"/join/{WILLOW}", {"code": code}).status_code == 303
    phone.submit(f"/join/{WILLOW}/details", {"name": name, "relationship": "parent", "email": email})
    phone.get(link_in(outbox(db, to=email, kind="verify-email")[-1]))
    agreed = phone.submit(f"/join/{WILLOW}/agree", {"agree_coc": "y", "acknowledge_notice": "y"})
    assert agreed.headers["Location"].endswith(f"/join/{WILLOW}/waiting")
    assert "Waiting for the moderator" in text_of(phone.get(f"/join/{WILLOW}/waiting"))
    db.commit()
    return db.exec(select(Membership.id).join(Person).where(Person.email == email)).one()


def test_demo_moderator_approves_one_parent_and_removes_another(app, db, make_browser):
    """Sign in, accept the notice, approve a parent (who lands on the chat), remove another (whose link dies)."""
    demo = json.loads(app.test_cli_runner().invoke(args=["demo", "--json"]).output)
    willow = next(group for group in demo["groups"] if group["slug"] == WILLOW)
    rep = next(m for m in demo["moderators"] if WILLOW in m["groups"])

    ada, ben = make_browser(), make_browser()
    ada_id = join_and_wait(ada, db, willow["codes"][0].lower(), "Ada Parent", "ada@example.com")
    ben_id = join_and_wait(ben, db, willow["codes"][1], "Ben Carer", "ben@example.com")

    moderator = make_browser()
    assert sign_in(moderator, rep["email"], rep["password"]).status_code == 303
    assert moderator.get("/moderate/").headers["Location"].endswith("/moderate/notice")
    assert moderator.submit("/moderate/notice", {"accept": "y"}).status_code == 303
    page = text_of(moderator.get(f"/moderate/{WILLOW}/"))
    assert "Ada Parent" in page and "Ben Carer" in page and willow["chat_url"] not in page

    for membership_id in (ada_id, ben_id):
        token = moderator.hidden_fields(moderator.get(f"/moderate/{WILLOW}/").get_data(as_text=True))["csrf_token"]
        url = f"/moderate/{WILLOW}/requests/{membership_id}/approve"
        response = moderator.client.post(url, data={"csrf_token": token})
        assert response.status_code == 303

    ada_link = link_in(outbox(db, to="ada@example.com", kind="invite")[-1])
    opened = ada.submit(ada_link)
    assert opened.status_code == 303 and opened.headers["Location"] == willow["chat_url"]

    ben_link = link_in(outbox(db, to="ben@example.com", kind="invite")[-1])
    assert ben.get(ben_link).status_code == 200  # working until the moderator removes Ben
    removed = moderator.submit(
        f"/moderate/{WILLOW}/members/{ben_id}/remove", {"reason": "abuse", "note": "Threatening messages."}
    )
    assert removed.status_code == 303
    checklist = text_of(moderator.get(removed.headers["Location"]))
    assert "Ben Carer" in checklist

    assert ben.get(ben_link).status_code == 410
    token = ben.hidden_fields(ben.get(f"/join/{WILLOW}").get_data(as_text=True))["csrf_token"]
    refused = ben.client.post(ben.path(ben_link), data={"csrf_token": token})
    assert refused.status_code == 410 and "Location" not in refused.headers
    assert outbox(db, to="ben@example.com", kind="removed")

    db.commit()
    assert db.get(Membership, ada_id).status == Status.LINK_USED
    assert db.get(Membership, ben_id).status == Status.REMOVED
    assert ledger.verify(db, db.exec(select(School.id)).one()).ok
