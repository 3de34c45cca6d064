"""Flask extensions, created unbound and bound to the app in create_app."""

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[])

# Methods no rate limit applies to: every limit in Classgate is on a POST (a code tried, a
# sign-in, an email sent). Reading a page is never counted, so it need not be checked either.
UNLIMITED_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@limiter.request_filter
def _reading() -> bool:
    """Skip a limited view's limit checks when the page is only being read (the join page's GET, say)."""
    return request.method in UNLIMITED_METHODS


def skip_limiter_middleware(app: Flask) -> None:
    """Drop the limiter's check before every request; each limited view checks its own limits.

    That check serves only default and application-wide limits, which Classgate does not set
    (a setting that adds them keeps it). A limited view's own check runs in its decorator either way.
    """
    if app.config.get("RATELIMIT_DEFAULT") or app.config.get("RATELIMIT_APPLICATION"):
        return
    checks = app.before_request_funcs.get(None, [])
    app.before_request_funcs[None] = [check for check in checks if check != limiter._check_request_limit]
