"""Security headers and cookies on every kind of response, and the refusal to serve with weak secrets.

Every answer (pages, redirects, 404s, CSRF refusals, 429s, 500s, static files, CSV and JSON
downloads) forbids script and framing, is never sniffed into another type and sends no referrer
from a token page; over HTTPS it tells the browser to keep to HTTPS. Every cookie is out of
script's reach, stays on this site and, outside development, travels over HTTPS only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask_login import login_user
from sqlmodel import SQLModel, select

from membership import create_app, schools
from membership.config import DEV_SECRETS, ROOT, ConfigError
from membership.db import get_session, session_scope
from membership.extensions import limiter
from membership.models import Role, User

from .conftest import PASSWORD, Browser, PhoneClient, link_in, outbox, sign_in, text_of
from .test_me import sign_in as parent_sign_in

STRONG = {"SECRET_KEY": "s" * 20 + "-signing-key-for-tests", "CODE_HMAC_KEY": "c" * 20 + "-code-hmac-key-for-tests"}
BOGUS = "eyJpIjo0fQ.aGVsbG8.c2VjcmV0LXBhcnQ"
# Every kind of page whose URL carries a one-time secret, with a token that is not one of ours.
TOKEN_PAGES = [
    f"/invite/{BOGUS}", f"/join/verify/{BOGUS}", f"/join/year-2-ash/invitation/{BOGUS}",
    f"/account/set-password/{BOGUS}", f"/join/reagree/{BOGUS}", f"/me/sign-in/{BOGUS}",
]


@pytest.fixture
def config(config) -> dict:
    """The test settings, with a sign-in limit low enough to reach: two failed attempts a minute."""
    return {**config, "SIGNIN_LIMIT_PER_CLIENT": "2 per minute"}


def directives(response) -> dict[str, list[str]]:
    """The Content-Security-Policy as {directive: [sources]}."""
    policy = response.headers.get("Content-Security-Policy", "")
    parsed = {}
    for part in filter(None, (p.strip() for p in policy.split(";"))):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def check_headers(response, what: str, *, https: bool = False) -> None:
    """The headers every response must carry, whatever it is."""
    csp = directives(response)
    scripts = csp.get("script-src", csp.get("default-src"))
    assert scripts, f"{what}: no script policy in {response.headers.get('Content-Security-Policy')!r}"
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} & set(scripts), f"{what}: script-src {scripts}"
    assert scripts == ["'none'"], f"{what}: Classgate runs no script at all, yet script-src is {scripts}"
    assert csp.get("frame-ancestors") == ["'none'"], f"{what}: framing allowed"
    assert csp.get("object-src") == ["'none'"], f"{what}: plugins allowed"
    assert response.headers.get("X-Frame-Options") == "DENY", what
    assert response.headers.get("X-Content-Type-Options") == "nosniff", what
    assert response.headers.get("Referrer-Policy") == "no-referrer", what
    hsts = response.headers.get("Strict-Transport-Security")
    if https:
        assert hsts, f"{what}: no Strict-Transport-Security over HTTPS"
        max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))
        assert max_age >= 180 * 24 * 3600, f"{what}: HSTS for only {max_age} seconds"
    else:
        assert hsts is None, f"{what}: Strict-Transport-Security over plain HTTP"


def read(response):
    """The response, read to the end and closed (a streamed download holds its request open until then)."""
    response.get_data()
    response.close()
    return response


def broken_view():
    """A page that fails, to see what a 500 answers."""
    raise RuntimeError("broken on purpose")


def every_kind_of_response(app: Flask, journey, make_browser, db) -> dict[str, tuple[int, object]]:
    """One of every kind of response Classgate gives, with the status it should have: {what: (status, response)}."""
    phone = make_browser  # a fresh phone for each request
    got = {
        "a page with a form": (200, phone().get("/join/year-2-ash")),
        "a redirect after a POST": (303, phone().submit("/join/year-2-ash/no-code", {"child_name": "Amelia R."})),
        "a redirect to sign in": (302, phone().get("/school/records")),
        "a missing page": (404, phone().get("/no/such/page")),
        "a missing group": (404, phone().get("/join/no-such-group")),
        "a wrong method": (405, phone().get("/logout")),
        "a POST without its CSRF token": (400, phone().client.post("/login", data={"email": "a@b.example"})),
        "the health check (JSON)": (200, phone().get("/healthz")),
        "a stylesheet": (200, read(phone().get("/static/classgate.css"))),
        "an icon": (200, read(phone().get("/static/favicon.svg"))),
    }
    for path in TOKEN_PAGES:
        got[f"a link that is not one of ours: {path}"] = (404, phone().get(path))

    office = phone()
    assert sign_in(office, "office@elm.example").status_code == 303
    got["a staff page"] = (200, office.get("/school/"))
    got["the records as CSV"] = (200, read(office.get("/school/records.csv")))
    got["another school's page"] = (404, office.get("/school/children/999999"))
    # Two failed sign-ins a minute are allowed here (see `config`); the third is turned away.
    guesser = phone()
    for _ in range(3):
        guesser.submit("/login", {"email": "office@elm.example", "password": "not the password"})
    got["too many sign-in attempts"] = (429, guesser.last)

    invite = journey.browser.get(journey.through_agree().headers["Location"])
    got["an invite page"] = (200, invite)
    got["a parent's data as JSON"] = (200, parent_sign_in(phone(), db).get("/me/data.json"))

    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.view_functions["web.home"] = broken_view
    got["a server error"] = (500, phone().get("/"))
    return got


@pytest.fixture
def office(make_account) -> None:
    """A staff account at Elm Primary School."""
    make_account("office@elm.example", Role.STAFF, (), accept_notice=False)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_every_kind_of_response_carries_the_security_headers(app, school, office, journey, make_browser, db, scheme):
    """Pages, redirects, errors (400, 404, 405, 429, 500), files and downloads: the same headers on all."""
    app.config["PREFERRED_URL_SCHEME"] = scheme  # the scheme of every test request
    got = every_kind_of_response(app, journey, make_browser, db)
    for what, (status, response) in got.items():
        assert response.status_code == status, f"{what}: {response.status_code}"
        check_headers(response, what, https=scheme == "https")
    assert got["the records as CSV"][1].mimetype == "text/csv"
    assert got["a parent's data as JSON"][1].mimetype == "application/json"
    assert "Sorry, something went wrong" in text_of(got["a server error"][1])
    assert "Open the group" in text_of(got["an invite page"][1])


def test_pages_holding_a_live_token_send_no_referrer(journey, db):
    """The invite page and the emailed confirmation link, opened for real, never pass their URL to another site."""
    invite_page = journey.browser.get(journey.through_agree().headers["Location"])
    assert invite_page.status_code == 200 and "Open the group" in text_of(invite_page)
    verify = journey.browser.get(link_in(outbox(db, kind="verify-email")[-1]))
    assert verify.status_code == 302
    for page in (invite_page, verify):
        assert page.headers["Referrer-Policy"] == "no-referrer"


def test_a_view_cannot_loosen_the_referrer_policy_of_a_token_page(app, school):
    """Even if a view asked for a laxer policy, a URL carrying a one-time token keeps 'no-referrer'."""

    @app.after_request
    def lax(response):
        # Registered last, so it runs before Classgate's own headers: as a view setting the header would.
        response.headers["Referrer-Policy"] = "unsafe-url"
        return response

    client = app.test_client()
    assert client.get(f"/invite/{BOGUS}").headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/join/year-2-ash").headers["Referrer-Policy"] == "unsafe-url"


def test_hsts_behind_a_proxy_follows_the_trusted_forwarded_scheme(config):
    """Behind TRUST_PROXY_HOPS proxies, X-Forwarded-Proto: https means HTTPS; without that trust it means nothing."""
    trusted, untrusted = create_app({**config, "TRUST_PROXY_HOPS": 1}), create_app({**config, "TRUST_PROXY_HOPS": 0})
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    try:
        assert "Strict-Transport-Security" in trusted.test_client().get("/healthz", headers=forwarded).headers
        assert "Strict-Transport-Security" not in trusted.test_client().get("/healthz").headers
        assert "Strict-Transport-Security" not in untrusted.test_client().get("/healthz", headers=forwarded).headers
    finally:
        for app in (trusted, untrusted):
            app.extensions["classgate_engine"].dispose()


# --- Cookies ------------------------------------------------------------------------------------------


def cookies_set(response) -> list[str]:
    """The Set-Cookie headers of a response."""
    return response.headers.getlist("Set-Cookie")


def check_cookie(header: str, *, secure: bool) -> None:
    """A cookie script cannot read, that stays on this site, and is Secure when it must be."""
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in header.split(";")[1:]}
    assert "httponly" in attributes, header
    assert attributes.get("samesite", "").lower() == "samesite=lax", header
    assert ("secure" in attributes) == secure, header


@pytest.fixture
def production(config) -> Iterator[Callable[..., Flask]]:
    """A factory of apps configured as in production (strong secrets, https), with a school and a staff account."""
    made: list[Flask] = []

    def make(**overrides) -> Flask:
        app = create_app({**config, "ENV_NAME": "production", "BASE_URL": "https://classgate.example", **STRONG,
                          **overrides})
        made.append(app)
        app.test_client_class = PhoneClient
        SQLModel.metadata.create_all(app.extensions["classgate_engine"])
        with app.app_context(), session_scope() as session:
            if schools.school_by_slug(session, "elm-primary") is None:
                school = schools.create_school(session, "elm-primary", "Elm Primary School", "office@elm.example")
                schools.create_group(session, school, "year-2-ash", "Year 2 Ash",
                                     chat_url="https://chat.whatsapp.com/AshChat")
                schools.create_user(session, school, "office@elm.example", Role.STAFF, password=PASSWORD)
        limiter.reset()
        return app

    yield make
    for app in made:
        app.extensions["classgate_engine"].dispose()


def every_cookie_on_the_way_in(app: Flask, scheme: str) -> list[str]:
    """Set-Cookie headers met by a parent starting to join and a member of staff signing in and checking the ledger."""
    app.config["PREFERRED_URL_SCHEME"] = scheme  # the scheme of every test request
    seen = []
    parent = Browser(app.test_client())
    seen += cookies_set(parent.get("/join/year-2-ash"))
    seen += cookies_set(parent.submit("/join/year-2-ash/no-code", {"child_name": "Amelia R."}))
    office = Browser(app.test_client())
    seen += cookies_set(office.get("/login"))
    seen += cookies_set(office.submit("/login", {"email": "office@elm.example", "password": PASSWORD}))
    seen += cookies_set(office.get("/school/"))
    seen += cookies_set(office.submit("/school/ledger", {}))
    return seen


def test_cookies_in_development_are_httponly_and_samesite_lax(app, school, make_account):
    """On a developer's http://127.0.0.1 the cookie cannot be Secure, but script and other sites still cannot use it."""
    make_account("office@elm.example", Role.STAFF, (), accept_notice=False)
    seen = every_cookie_on_the_way_in(app, "http")
    assert seen and all(header.startswith("session=") for header in seen), seen
    for header in seen:
        check_cookie(header, secure=False)


def test_cookies_in_production_are_secure_httponly_and_samesite_lax(production):
    """In production every cookie Classgate sets is Secure, HttpOnly and SameSite=Lax."""
    app = production()
    seen = every_cookie_on_the_way_in(app, "https")
    assert seen and all(header.startswith("session=") for header in seen), seen
    for header in seen:
        check_cookie(header, secure=True)


def test_forms_work_over_https_although_no_page_sends_a_referrer(production):
    """A no-referrer page's form arrives with no Referer and 'Origin: null': over HTTPS it must still be accepted."""
    app = production()
    app.config["PREFERRED_URL_SCHEME"] = "https"
    office = Browser(app.test_client())
    response = sign_in(office, "office@elm.example")
    assert response.status_code == 303 and response.headers["Location"].endswith("/school/")
    checked = office.submit("/school/ledger", {}, headers={"Origin": "null"})
    assert checked.status_code == 200 and "intact" in text_of(checked).lower()
    assert "Strict-Transport-Security" in checked.headers


def test_production_cookies_stay_secure_even_if_a_setting_says_otherwise(production):
    """An override cannot send the session over plain HTTP in production."""
    app = production(SESSION_COOKIE_SECURE=False, REMEMBER_COOKIE_SECURE=False)
    response = app.test_client().get("/join/year-2-ash", base_url="https://classgate.example")
    check_cookie(cookies_set(response)[0], secure=True)


def test_a_remember_me_cookie_would_be_secure_too(production):
    """Classgate never asks Flask-Login to remember anyone, but if it did, that cookie would be as safe."""
    app = production()

    @app.route("/remember-me-probe")
    def remember_me_probe():
        """Sign the office in with 'remember me', which Classgate itself never does."""
        login_user(get_session().exec(select(User)).one(), remember=True)
        return "signed in"

    response = app.test_client().get("/remember-me-probe", base_url="https://classgate.example")
    remembered = [header for header in cookies_set(response) if header.startswith("remember_token=")]
    assert remembered, cookies_set(response)
    check_cookie(remembered[0], secure=True)


# --- Secrets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["SECRET_KEY", "CODE_HMAC_KEY"])
@pytest.mark.parametrize(("value", "reason"), [
    ("", "is not set"),
    (None, "is the development default"),
    ("x" * 31, "only 31 characters long"),
])
def test_production_refuses_to_start_with_a_weak_secret(config, name, value, reason):
    """Missing, the published development value, or under 32 characters: the app will not start, and says why."""
    settings = {**config, "ENV_NAME": "production", "BASE_URL": "https://classgate.example", **STRONG}
    settings[name] = DEV_SECRETS[name] if value is None else value
    with pytest.raises(ConfigError) as refused:
        create_app(settings)
    message = str(refused.value)
    assert name in message and reason in message
    assert 'python -c "import secrets; print(secrets.token_urlsafe(48))"' in message


def test_production_refuses_one_key_for_both_purposes(config):
    """The signing key and the codes' HMAC key must be different secrets."""
    same = "k" * 48
    with pytest.raises(ConfigError, match="must be different"):
        create_app({**config, "ENV_NAME": "production", "BASE_URL": "https://classgate.example",
                    "SECRET_KEY": same, "CODE_HMAC_KEY": same})


@pytest.mark.parametrize("mode", ["production", "staging"])
def test_any_mode_but_development_and_testing_needs_strong_secrets(config, mode):
    """A mode that is not development or testing is treated as production: strong secrets start, defaults do not."""
    base = {**config, "ENV_NAME": mode, "BASE_URL": "https://classgate.example"}
    assert create_app({**base, **STRONG}).config["SESSION_COOKIE_SECURE"] is True
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app({**base, **{"SECRET_KEY": DEV_SECRETS["SECRET_KEY"], "CODE_HMAC_KEY": STRONG["CODE_HMAC_KEY"]}})


def test_development_starts_with_its_own_defaults(config):
    """Development and testing still start with the published development values."""
    for mode in ("development", "testing"):
        app = create_app({**config, "ENV_NAME": mode, **DEV_SECRETS})
        assert app.config["SECRET_KEY"] == DEV_SECRETS["SECRET_KEY"]


def test_the_server_entry_point_says_plainly_why_it_will_not_start(tmp_path):
    """`flask --app app` and gunicorn's app:app stop with one line naming the variable, not a traceback."""
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "CODE_HMAC_KEY"}}
    env.update({"CLASSGATE_ENV": "production", "BASE_URL": "https://classgate.example",
                "CODE_HMAC_KEY": STRONG["CODE_HMAC_KEY"], "CLASSGATE_INSTANCE": str(tmp_path)})
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "Classgate will not start: SECRET_KEY is not set" in result.stderr
    assert "secrets.token_urlsafe(48)" in result.stderr
    assert "Traceback" not in result.stderr


# --- Templates ---------------------------------------------------------------------------------------


def test_no_template_has_inline_script_handlers_or_styles():
    """The CSP forbids inline script and styles, so none may creep into a template (it would silently not work)."""
    inline = re.compile(r"<script|\son[a-z]+\s*=|javascript:|<style|\sstyle\s*=", re.I)
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if inline.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
