"""A moderator sees only their own groups: every group URL of another group answers 404.

The routes are read from the URL map, so a page added later cannot be forgotten here.
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from membership.models import Group, Membership

from .conftest import link_in, outbox, snapshot

OWN, OTHER = "year-2-ash", "year-4-birch"
READ = {"GET"}


def moderator_rules(app) -> list:
    """Every moderator URL that names a group."""
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("moderate.") and "slug" in r.arguments]
    assert len(rules) >= 11
    return rules


def url_for_rule(app, rule, slug: str, membership_id: int) -> str:
    """Build a rule's URL for a group and a membership id."""
    values = {"slug": slug}
    if "membership_id" in rule.arguments:
        values["membership_id"] = membership_id
    unknown = rule.arguments - values.keys()
    assert not unknown, f"{rule.rule}: add a value for {unknown} to this test"
    with app.test_request_context():
        adapter = app.url_map.bind("localhost")
        return adapter.build(rule.endpoint, values)


@pytest.fixture
def memberships(school, db, make_browser) -> dict[str, int]:
    """A parent waiting for approval in each group (the no-code path waits in any group)."""
    ids = {}
    for slug, email in ((OWN, "own@example.com"), (OTHER, "other@example.com")):
        phone = make_browser()
        phone.submit(f"/join/{slug}/no-code", {"child_name": "Amelia R."})
        phone.submit(f"/join/{slug}/details", {"name": "A Parent", "relationship": "parent", "email": email})
        phone.get(link_in(outbox(db, to=email, kind="verify-email")[-1]))
        assert phone.submit(f"/join/{slug}/agree", {"agree_coc": "y", "acknowledge_notice": "y"}).status_code == 303
        db.commit()
        group_id = db.exec(select(Group.id).where(Group.slug == slug)).one()
        ids[slug] = db.exec(select(Membership.id).where(Membership.group_id == group_id)).one()
    return ids


def test_every_url_of_another_group_answers_404(app, moderator, memberships, db):
    """Whatever the page or method, another group's URL is 'not found', and nothing changes."""
    token = moderator.hidden_fields(moderator.get("/moderate/").get_data(as_text=True))["csrf_token"]
    before = snapshot(db)
    checked = 0
    for rule in moderator_rules(app):
        for slug, membership_id in ((OTHER, memberships[OTHER]), ("no-such-group", memberships[OTHER])):
            url = url_for_rule(app, rule, slug, membership_id)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                data = None if method in READ else {"csrf_token": token}
                response = moderator.client.open(url, method=method, data=data)
                assert response.status_code == 404, f"{method} {url} answered {response.status_code}"
                checked += 1
    assert checked >= 28  # 14 method-and-page pairs, each for another group and an unknown one
    assert snapshot(db) == before


def test_a_membership_of_another_group_is_not_found_in_your_own(app, moderator, memberships, db):
    """Swapping in another group's membership id under your own group's URL is 'not found' too."""
    token = moderator.hidden_fields(moderator.get("/moderate/").get_data(as_text=True))["csrf_token"]
    before = snapshot(db)
    for rule in moderator_rules(app):
        if "membership_id" not in rule.arguments:
            continue
        url = url_for_rule(app, rule, OWN, memberships[OTHER])
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            data = None if method in READ else {"csrf_token": token}
            response = moderator.client.open(url, method=method, data=data)
            assert response.status_code == 404, f"{method} {url} answered {response.status_code}"
    assert snapshot(db) == before


def test_every_moderator_form_refuses_a_post_without_csrf(app, moderator, memberships, db):
    """No moderator action can be triggered from another site: a POST without the token is refused."""
    before = snapshot(db)
    posts = 0
    for rule in moderator_rules(app):
        if "POST" not in rule.methods:
            continue
        url = url_for_rule(app, rule, OWN, memberships[OWN])
        response = moderator.client.post(url, data={})
        assert response.status_code == 400, f"POST {url} answered {response.status_code}"
        posts += 1
    assert snapshot(db) == before
    assert posts >= 8


def test_own_group_page_opens(moderator, memberships):
    """The moderator's own group opens, with the waiting parent on it."""
    response = moderator.get(f"/moderate/{OWN}/")
    assert response.status_code == 200
    assert "A Parent" in response.get_data(as_text=True)
