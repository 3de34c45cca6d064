"""Staff see only their own school: every staff URL naming another school's things answers 404.

The routes are read from the URL map, so a page added later cannot be forgotten here.
"""

from __future__ import annotations

from .conftest import snapshot, text_of

# URL arguments that name something belonging to a school, and which of the other school's things to use.
SCHOOL_OWNED = {"slug", "child_id", "membership_id", "user_id", "concern_id"}


def concern_state(session) -> tuple:
    """The concerns, their statuses and notes, and the incident log: what a refused staff request must not touch."""
    from sqlmodel import select

    from membership.models import Concern, ConcernUpdate, Incident

    session.commit()
    return (
        sorted((c.id, c.status) for c in session.exec(select(Concern))),
        len(session.exec(select(ConcernUpdate)).all()),
        len(session.exec(select(Incident)).all()),
    )


def staff_rules(app) -> list:
    """Every staff URL that names one of a school's groups, children, memberships, accounts or concerns."""
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("school.") and r.arguments & SCHOOL_OWNED]


def build(app, rule, values: dict) -> str:
    """A rule's URL with the other school's things filled in."""
    with app.test_request_context():
        return app.url_map.bind("localhost").build(rule.endpoint, {k: values[k] for k in rule.arguments})


def test_every_staff_url_of_another_school_answers_404(app, staff, other_school, db):
    """Whatever the page or method, another school's group, child, parent, account or concern is 'not found'."""
    token = staff.hidden_fields(staff.get("/school/").get_data(as_text=True))["csrf_token"]
    before = snapshot(db), concern_state(db)
    for rule in staff_rules(app):
        unknown = rule.arguments - SCHOOL_OWNED - {"kind", "number", "fmt"}
        assert not unknown, f"{rule.rule}: teach this test about {unknown}"
        values = {**other_school, "kind": "code_of_conduct", "number": 1, "fmt": "pdf"}
        url = build(app, rule, values)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            data = None if method == "GET" else {"csrf_token": token}
            response = staff.client.open(url, method=method, data=data)
            assert response.status_code == 404, f"{method} {url} answered {response.status_code}"
    assert (snapshot(db), concern_state(db)) == before


def test_the_dashboard_shows_only_your_own_school(staff, other_school):
    """The overview lists this school's groups and nothing of the other school's."""
    page = text_of(staff.get("/school/"))
    assert "Elm Primary School" in page and "Year 2 Ash" in page
    assert "Pine" not in page


def test_moderators_and_signed_out_visitors_do_not_get_in(client, moderator, school):
    """The staff console is not there for a moderator, and asks a signed-out visitor to sign in."""
    assert moderator.get("/school/").status_code == 404
    response = client.get("/school/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_staff_sign_in_lands_on_the_school_overview(make_account, browser):
    """Staff signing in arrive at their school's overview."""
    from membership.models import Role

    from .conftest import sign_in

    make_account("office@elm.example", Role.STAFF, (), accept_notice=False)
    response = sign_in(browser, "office@elm.example")
    assert response.headers["Location"].endswith("/school/")


def test_dashboard_flags_documents_past_their_review_date(staff):
    """A document whose review date has passed is flagged on the overview; one still in date is not."""
    from datetime import date, timedelta

    from membership import policies, schools
    from membership.db import session_scope
    from membership.models import DocumentKind

    with session_scope() as session:
        school = schools.school_by_slug(session, "elm-primary")
        policies.publish(session, school.id, DocumentKind.CODE_OF_CONDUCT, "Be kind.", material=False,
                         review_due=date.today() - timedelta(days=1))
        policies.publish(session, school.id, DocumentKind.DATA_NOTICE, "We keep little.", material=False,
                         review_due=date.today() + timedelta(days=30))
    page = text_of(staff.get("/school/"))
    assert "Review overdue" in page
    assert "Class Group Code of Conduct (version 2) was due for review" in page
    assert "Data notice (version 2) was due" not in page
