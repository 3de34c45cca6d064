"""Classgate: the gate in front of a school class's parent group chat."""

from __future__ import annotations

import logging
import re
import threading

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config as settings
from . import db, formatting, forms_common
from .cookies import SignedCookieSessions
from .extensions import csrf, limiter, login_manager, skip_limiter_middleware


def create_app(config: dict | None = None) -> Flask:
    """Build the Flask app; `config` overrides settings read from the environment."""
    app = Flask(
        __name__,
        template_folder=str(settings.ROOT / "templates"),
        static_folder=str(settings.ROOT / "static"),
        instance_path=str(settings.INSTANCE),
        instance_relative_config=False,
    )
    app.config.from_mapping(settings.from_env())
    if config:
        app.config.update(config)
    settings.secure_cookies(app.config)
    settings.check(app.config)
    app.session_interface = SignedCookieSessions()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").addFilter(MaskTokens())
    if app.config["TRUST_PROXY_HOPS"]:
        # Behind a load balancer the client's address (for rate limits) is in X-Forwarded-For.
        hops = app.config["TRUST_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    db.init_app(app)
    forms_common.quicker_inputs()
    formatting.init_app(app)
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    limiter.init_app(app)
    skip_limiter_middleware(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to continue."

    from .account import bp as account_bp
    from .auth import bp as auth_bp
    from .invite import bp as invite_bp
    from .join import bp as join_bp
    from .me import bp as me_bp
    from .moderate import bp as moderate_bp
    from .report import bp as concerns_bp
    from .school import bp as school_bp
    from .web import bp as web_bp

    app.register_blueprint(web_bp)
    app.register_blueprint(join_bp)
    app.register_blueprint(invite_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(moderate_bp)
    app.register_blueprint(school_bp)
    app.register_blueprint(me_bp)
    app.register_blueprint(concerns_bp)
    _school_sections(app)

    from .cli import register

    register(app)
    _security_headers(app)
    _error_pages(app)
    if app.config["MAIL_SEND_INLINE"]:
        _send_mail_after_requests(app)
    return app


# Paths whose last segment is a one-time secret; access logs show them masked.
TOKEN_PATH = re.compile(r"(/(?:invite|verify|invitation|set-password|reagree|sign-in)/)[^\s/?\"]+")


def mask_tokens(text: str) -> str:
    """Replace the secret part of token-bearing paths with '***'."""
    return TOKEN_PATH.sub(r"\1***", text)


class MaskTokens(logging.Filter):
    """A logging filter that keeps one-time tokens out of access logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask tokens in the formatted message, then let the record through."""
        message = mask_tokens(record.getMessage())
        record.msg, record.args = message, ()
        return True


# The staff console's sections, in order: (name, endpoint, label). Each section adds itself here.
SCHOOL_SECTIONS = [
    ("dashboard", "school.dashboard", "Overview"),
    ("groups", "school.list_groups", "Groups and moderators"),
    ("roster", "school.roster", "Class lists and codes"),
    ("policies", "school.list_policies", "Documents"),
    ("records", "school.records", "Records"),
    ("concerns", "school.concerns", "Concerns"),
    ("ledger", "school.ledger_check", "Ledger check"),
]


def _school_sections(app: Flask) -> None:
    """Give staff templates the list of sections whose pages exist."""

    @app.context_processor
    def sections():
        return {"school_sections": [s for s in SCHOOL_SECTIONS if s[1] in app.view_functions]}


# How long a browser keeps to HTTPS for Classgate once it has been served over it: a year.
HSTS = "max-age=31536000"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' https:"
)


# Sent with every response unless the view set its own. No script at all, and no framing. Chrome
# applies form-action to the redirect after a POST, and redeeming an invite redirects to the chat
# platform, so forms may post to us and be redirected over https. Token-bearing URLs must never
# leak to another site, so no page sends a referrer.
SECURITY_HEADERS = (
    ("content-security-policy", "Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "X-Frame-Options", "DENY"),
    ("x-content-type-options", "X-Content-Type-Options", "nosniff"),
    ("referrer-policy", "Referrer-Policy", "no-referrer"),
)


def _security_headers(app: Flask) -> None:
    """Add the security headers to every response: pages, redirects, errors, files and downloads."""

    @app.after_request
    def add_headers(response):
        headers = response.headers
        present = {name.lower() for name, _ in headers.items()}
        headers.extend([(name, value) for lower, name, value in SECURITY_HEADERS if lower not in present])
        if "referrer-policy" in present and TOKEN_PATH.search(request.path):
            headers["Referrer-Policy"] = "no-referrer"  # whatever a view chose, never from a token page
        if request.is_secure and "strict-transport-security" not in present:
            # Only over HTTPS (behind a proxy, TRUST_PROXY_HOPS lets X-Forwarded-Proto say so): a browser
            # ignores it over plain HTTP, and a development server on http:// must stay reachable.
            headers["Strict-Transport-Security"] = HSTS
        if request.endpoint and request.endpoint != "static" and "cache-control" not in present:
            headers["Cache-Control"] = "no-store"
        return response


def _error_pages(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template("errors/csrf.html"), 400

    @app.errorhandler(404)
    def not_found(error):
        return render_template("errors/404.html"), 404

    @app.errorhandler(405)
    def not_allowed(error):
        return render_template("errors/404.html"), 405

    @app.errorhandler(413)
    def too_large(error):
        return render_template("errors/generic.html", title="That was too large",
                               message="What you sent was too large. Go back and try again."), 413

    @app.errorhandler(429)
    def too_many(error):
        return render_template("errors/429.html"), 429

    @app.errorhandler(500)
    def server_error(error):
        return render_template("errors/generic.html", title="Sorry, something went wrong",
                               message="Nothing you entered has been lost. Please try again in a few minutes."), 500


def _send_mail_after_requests(app: Flask) -> None:
    """In development, a background thread delivers queued mail whenever a request may have added some."""
    from . import mail

    wake = threading.Event()
    started = threading.Lock()

    def worker() -> None:
        while True:
            # A kick during a delivery run sets the event again, so no message waits for the timeout.
            wake.wait(timeout=30)
            wake.clear()
            try:
                with app.app_context(), db.session_scope() as session:
                    mail.send_pending(session)
            except Exception:  # noqa: BLE001 - the next run retries; nothing is lost
                logging.getLogger(__name__).exception("in-process mail delivery failed")

    @app.after_request
    def kick(response):
        if request.method not in db.READ_METHODS or request.endpoint == "join.verify_email":
            if started.acquire(blocking=False):
                threading.Thread(target=worker, name="classgate-mail", daemon=True).start()
            response.call_on_close(wake.set)
        return response
