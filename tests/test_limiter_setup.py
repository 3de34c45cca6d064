"""Every limit is checked by its own view; a deployment that adds a default limit still has it enforced."""

from __future__ import annotations

from membership import create_app
from membership.extensions import limiter


def _app_with_ping(config: dict):
    app = create_app({**config, "WTF_CSRF_ENABLED": False})
    app.add_url_rule("/ping", "ping", lambda: "pong", methods=["POST"])
    limiter.reset()
    return app


def test_a_default_limit_set_by_the_deployment_is_enforced(config):
    """RATELIMIT_DEFAULT keeps the limiter's check before every request: the second POST is refused."""
    app = _app_with_ping({**config, "RATELIMIT_DEFAULT": "1 per minute"})
    client = app.test_client()
    assert client.post("/ping").status_code == 200
    assert client.post("/ping").status_code == 429


def test_without_one_an_unlimited_view_is_never_counted(config):
    """Classgate sets no default limit, so a view without a limit of its own answers every time."""
    app = _app_with_ping(config)
    client = app.test_client()
    assert [client.post("/ping").status_code for _ in range(5)] == [200] * 5
    assert limiter._check_request_limit not in app.before_request_funcs[None]
