"""App-wide behaviour: health check, security headers, settings, logs without secrets."""

from __future__ import annotations

import logging

import pytest

from membership import MaskTokens, create_app
from membership.config import ConfigError, check, from_env

from .conftest import text_of


def test_healthz_answers_when_the_database_does(client):
    """A load balancer sees 200 and 'ok' while the database answers."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_an_unreachable_database(config, tmp_path):
    """With the database gone, /healthz says 503 rather than pretending."""
    config["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    app = create_app(config)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


def test_every_page_carries_the_security_headers(client, school):
    """No framing, no inline script, no referrer leaking token URLs."""
    response = client.get("/join/year-2-ash")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_group_gets_a_helpful_404(client, school):
    """A mistyped join address says where the right one is."""
    response = client.get("/join/no-such-group")
    assert response.status_code == 404
    assert "letter from the school" in text_of(response)


@pytest.mark.parametrize("name", ["SECRET_KEY", "CODE_HMAC_KEY"])
def test_production_refuses_short_secrets(name):
    """Outside development, a missing or short secret stops the app from starting."""
    settings = from_env({"CLASSGATE_ENV": "production", "SECRET_KEY": "x" * 40, "CODE_HMAC_KEY": "y" * 40,
                         "BASE_URL": "https://classgate.example"})
    check(settings)
    settings[name] = "short"
    with pytest.raises(ConfigError, match=name):
        check(settings)


def test_production_session_cookie_is_secure():
    """Outside development the session cookie is Secure, HttpOnly and SameSite=Lax."""
    settings = from_env({"CLASSGATE_ENV": "production"})
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["SESSION_COOKIE_HTTPONLY"] is True
    assert settings["SESSION_COOKIE_SAMESITE"] == "Lax"


@pytest.mark.parametrize(
    "path",
    ["/invite/eyJpIjo0.awHzQg.AbgU", "/join/verify/eyJtIjoyfQ.awHy_g.zqXi", "/join/y3/invitation/abc.def",
     "/account/set-password/abc.def", "/join/reagree/abc.def"],
)
def test_access_log_masks_one_time_tokens(path, caplog):
    """A token never reaches the log: the access line shows *** in its place."""
    logger = logging.getLogger("test.access")
    logger.addFilter(MaskTokens())
    with caplog.at_level(logging.INFO, logger="test.access"):
        logger.info('127.0.0.1 - - "GET %s HTTP/1.1" 200 -', path)
    secret = path.rsplit("/", 1)[1]
    assert secret not in caplog.text
    assert "/***" in caplog.text
