"""A parent who joined through the demo signs in at /me/, downloads their data, leaves and erases their details."""

from __future__ import annotations

import json

from sqlmodel import select

from membership.models import Membership, Person, School, Status

from .conftest import link_in, outbox, text_of

OAK = "year-3-oak"
EMAIL = "dana.parent@example.com"


def test_demo_parent_signs_in_downloads_leaves_and_erases_with_the_ledger_intact(app, db, make_browser):
    cli = app.test_cli_runner()
    demo = json.loads(cli.invoke(args=["demo", "--json"]).output)
    oak = next(group for group in demo["groups"] if group["slug"] == OAK)

    # Joins Year 3 Oak (an open group) with a code from the demo letters, and opens the chat.
    phone = make_browser()
    assert phone.submit(f"/join/{OAK}", {"code": oak["codes"][0]}).status_code == 303
    phone.submit(f"/join/{OAK}/details", {"name": "Dana Parent", "relationship": "parent", "email": EMAIL,
                                         "mobile": "07912 345678"})
    phone.get(link_in(outbox(db, to=EMAIL, kind="verify-email")[-1]))
    agreed = phone.submit(f"/join/{OAK}/agree", {"agree_coc": "y", "acknowledge_notice": "y"})
    assert phone.submit(agreed.headers["Location"]).headers["Location"] == oak["chat_url"]

    # Signs in at /me/ with the emailed link, on another day and another phone.
    later = make_browser()
    assert later.submit("/me/", {"email": EMAIL}).status_code == 303
    link = link_in(outbox(db, to=EMAIL, kind="parent-sign-in")[-1])
    assert later.get(link).status_code == 200
    assert later.submit(link).headers["Location"].endswith("/me/")
    groups = text_of(later.get("/me/"))
    assert "Year 3 Oak" in groups and "Class Group Code of Conduct" in groups

    # Downloads their data.
    download = later.get("/me/data.json")
    assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
    data = json.loads(download.get_data(as_text=True))
    text = json.dumps(data)
    assert "Dana Parent" in text and EMAIL in text and "+447912345678" in text
    assert {"agree", "acknowledge"} <= {entry["action"] for entry in data["ledger"]}

    # Leaves the group: never penalised, and the moderator is asked to take them out of the chat.
    db.commit()
    membership_id = db.exec(select(Membership.id).join(Person).where(Person.email == EMAIL)).one()
    assert later.submit(f"/me/groups/{membership_id}/leave").status_code == 303
    db.commit()
    assert db.get(Membership, membership_id).status == Status.LEFT
    rep = next(m for m in demo["moderators"] if OAK in m["groups"])
    assert outbox(db, to=rep["email"], kind="chat-removal")

    # Erases their details.
    erased = later.submit("/me/erase", {"understand": "y"})
    assert erased.status_code == 200 and "erased" in text_of(erased).lower()
    db.commit()
    person = db.exec(select(Person).join(Membership).where(Membership.id == membership_id)).one()
    assert (person.name, person.email, person.mobile) == (None, None, None)
    assert later.get("/me/data.json").status_code == 303  # signed out: nothing more to see

    # The ledger still verifies, and the school's export no longer names them.
    verified = cli.invoke(args=["ledger", "verify", "--school", demo["school"]["slug"]])
    assert verified.exit_code == 0 and "intact" in verified.output, verified.output
    staff = make_browser()
    signed_in = staff.submit("/login", {"email": demo["staff"]["email"], "password": demo["staff"]["password"]})
    assert signed_in.status_code == 303, text_of(signed_in)
    export = staff.get("/school/records.csv").get_data(as_text=True)
    assert person.ref in export
    assert "Dana" not in export and EMAIL not in export and "345678" not in export
    db.commit()
    assert db.exec(select(School).where(School.slug == demo["school"]["slug"])).one()

