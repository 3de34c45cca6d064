"""One sign-in link pressed on many devices at the same moment signs in exactly one of them."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlmodel import select

from membership import journey as steps
from membership import schools
from membership.db import session_scope
from membership.models import ParentSignIn, Verification

from .conftest import link_in, outbox
from .live_server import text
from .test_concurrency import live_server, race, web, where  # noqa: F401 - fixtures used by name
from .test_me import EMAIL


def test_ten_simultaneous_presses_of_one_sign_in_link_sign_in_once(live_server, web, db):  # noqa: F811
    """Ten devices press 'Sign in' together: one is signed in, nine are told the link was used."""
    with session_scope() as session:
        group = schools.group_by_slug(session, "year-2-ash")
        steps.start(session, group, steps.Proof(Verification.NONE, claimed_child_name="Amelia R."),
                    name="Sam Parent", relationship="parent", email=EMAIL, mobile=None)
    asker = web()
    assert asker.submit("/me/", {"email": EMAIL}).status_code == 303
    path = urlsplit(link_in(outbox(db, to=EMAIL, kind="parent-sign-in")[-1])).path

    devices = [web() for _ in range(10)]
    forms = [{"csrf_token": device.form(path)["csrf_token"]} for device in devices]
    responses = race(devices, path, forms)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [303] + [410] * 9, live_server.log()
    signed_in = [device for device, response in zip(devices, responses, strict=True) if response.status_code == 303]
    assert where(responses[[r.status_code for r in responses].index(303)]) == "/me/"
    assert "Signed in as sam@example.com" in text(signed_in[0].get("/me/"))
    for device, response in zip(devices, responses, strict=True):
        if response.status_code == 410:
            assert "already been used" in text(response)
            assert "Signed in as" not in text(device.get("/me/"))
    db.commit()
    assert db.exec(select(ParentSignIn)).one().used_at is not None
    assert live_server.errors() == [], live_server.log()
