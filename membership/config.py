"""Settings read from the environment, with safe defaults for development."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"

# Secrets shorter than this are refused outside development and testing.
MIN_SECRET_LENGTH = 32
DEV_MODES = frozenset({"development", "testing"})
# The values used when a development machine sets none; published here, so never safe to serve with.
DEV_SECRETS = {
    "SECRET_KEY": "dev-secret-key-change-me-for-production!!",
    "CODE_HMAC_KEY": "dev-code-key-change-me-for-production!!!",
}
GENERATE_COMMAND = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


class ConfigError(RuntimeError):
    """Raised when the settings are unsafe to run with."""


def _bool(value: str | None, default: bool = False) -> bool:
    """Read a yes/no environment value."""
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def from_env(environ: dict[str, str] | None = None) -> dict:
    """Build the Flask config mapping from environment variables."""
    env = os.environ if environ is None else environ
    mode = env.get("CLASSGATE_ENV", "development")
    dev = mode in DEV_MODES
    instance = Path(env.get("CLASSGATE_INSTANCE", INSTANCE))
    return {
        "ENV_NAME": mode,
        "TESTING": mode == "testing",
        "SECRET_KEY": env.get("SECRET_KEY", DEV_SECRETS["SECRET_KEY"] if dev else ""),
        # Codes are stored only as HMAC-SHA256 under this key: rotating it voids every code.
        "CODE_HMAC_KEY": env.get("CODE_HMAC_KEY", DEV_SECRETS["CODE_HMAC_KEY"] if dev else ""),
        "DATABASE_URL": env.get("DATABASE_URL", f"sqlite:///{instance / 'classgate.db'}"),
        "DB_POOL_SIZE": int(env.get("DB_POOL_SIZE", "5")),
        "DB_MAX_OVERFLOW": int(env.get("DB_MAX_OVERFLOW", "5")),
        "BASE_URL": env.get("BASE_URL", f"http://127.0.0.1:{env.get('PORT', '5000')}"),
        "INSTANCE_DIR": str(instance),
        "OUTBOX_DIR": env.get("OUTBOX_DIR", str(instance / "outbox")),
        "MAIL_FROM": env.get("MAIL_FROM", "Classgate <no-reply@classgate.invalid>"),
        "SMTP_HOST": env.get("SMTP_HOST", ""),
        "SMTP_PORT": int(env.get("SMTP_PORT", "587")),
        "SMTP_USER": env.get("SMTP_USER", ""),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD", ""),
        "SMTP_STARTTLS": _bool(env.get("SMTP_STARTTLS"), True),
        # In development every message is written as an .eml file; in production it goes by SMTP.
        "MAIL_WRITE_FILES": _bool(env.get("MAIL_WRITE_FILES"), dev),
        # Deliver queued mail straight after each request (development convenience).
        "MAIL_SEND_INLINE": _bool(env.get("MAIL_SEND_INLINE"), mode == "development"),
        "MAIL_MAX_ATTEMPTS": int(env.get("MAIL_MAX_ATTEMPTS", "8")),
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_ENABLED": _bool(env.get("RATELIMIT_ENABLED"), True),
        "CODE_LIMIT_PER_CLIENT": env.get("CODE_LIMIT_PER_CLIENT", "10 per minute;40 per hour"),
        "CODE_LIMIT_PER_GROUP": env.get("CODE_LIMIT_PER_GROUP", "120 per hour"),
        "MAIL_LIMIT_PER_CLIENT": env.get("MAIL_LIMIT_PER_CLIENT", "5 per minute;20 per hour"),
        "SIGNIN_LIMIT_PER_CLIENT": env.get("SIGNIN_LIMIT_PER_CLIENT", "10 per minute;60 per hour"),
        "SIGNIN_LIMIT_PER_ACCOUNT": env.get("SIGNIN_LIMIT_PER_ACCOUNT", "10 per hour"),
        # Staff and moderators stay signed in for a working day at most.
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=int(env.get("SIGNIN_HOURS", "12"))),
        "INVITE_MAX_AGE_HOURS": int(env.get("INVITE_MAX_AGE_HOURS", "72")),
        "CARER_INVITATION_DAYS": int(env.get("CARER_INVITATION_DAYS", "7")),
        "RESERVATION_HOURS": int(env.get("RESERVATION_HOURS", "24")),
        # Parents' /me/ sign-in: the emailed link's life, and how long the signed-in session lasts.
        "PARENT_LINK_MINUTES": int(env.get("PARENT_LINK_MINUTES", "30")),
        "PARENT_SESSION_MINUTES": int(env.get("PARENT_SESSION_MINUTES", "60")),
        "PARENT_LINK_LIMIT_PER_EMAIL": env.get("PARENT_LINK_LIMIT_PER_EMAIL", "3 per 15 minutes;10 per day"),
        "CONCERN_LIMIT_PER_CLIENT": env.get("CONCERN_LIMIT_PER_CLIENT", "3 per 10 minutes;10 per day"),
        "CONCERN_LIMIT_PER_SCHOOL": env.get("CONCERN_LIMIT_PER_SCHOOL", "100 per day"),
        # `flask purge` erases the details of people who left, were removed or were declined
        # longer ago than this, and of starts never confirmed after a day.
        "RETENTION_DAYS": int(env.get("RETENTION_DAYS", "180")),
        # How many reverse proxies in front of the app set X-Forwarded-For (0: none).
        "TRUST_PROXY_HOPS": int(env.get("TRUST_PROXY_HOPS", "0")),
        # Every cookie Classgate sets (the session, which also carries the CSRF token; Flask-Login's
        # remember-me cookie, should it ever be used) is out of reach of script, stays on this site
        # and, outside development, travels only over HTTPS.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": not dev,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": not dev,
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session cookie
        # Over HTTPS Flask-WTF would also demand a same-site Referer on every POST, but no page sends
        # one (Referrer-Policy: no-referrer keeps one-time tokens out of other sites' logs), and
        # browsers then send "Origin: null" too: every form, the invite's button among them, would
        # be refused. The token in the session, and the SameSite=Lax cookie carrying it, still stop
        # other sites posting on a visitor's behalf.
        "WTF_CSRF_SSL_STRICT": False,
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    }


def secure_cookies(config: dict) -> None:
    """Outside development and testing, cookies travel over HTTPS only, whatever the overrides said."""
    if config["ENV_NAME"] not in DEV_MODES:
        config["SESSION_COOKIE_SECURE"] = True
        config["REMEMBER_COOKIE_SECURE"] = True


def secret_problem(name: str, value: str | None) -> str | None:
    """Why a secret is unsafe to serve with (missing, the published development value, short), or None."""
    if not value:
        return f"{name} is not set"
    if value == DEV_SECRETS.get(name):
        return f"{name} is the development default, which anyone can read in Classgate's source"
    if len(value) < MIN_SECRET_LENGTH:
        return f"{name} is only {len(value)} characters long; it needs at least {MIN_SECRET_LENGTH}"
    return None


def check(config: dict) -> None:
    """Refuse to start with weak secrets outside development and testing."""
    if config["ENV_NAME"] in DEV_MODES:
        return
    for name in ("SECRET_KEY", "CODE_HMAC_KEY"):
        problem = secret_problem(name, config.get(name))
        if problem:
            raise ConfigError(
                f"{problem}. Set {name} in the environment to at least {MIN_SECRET_LENGTH} random characters, "
                f"for example the output of: {GENERATE_COMMAND}"
            )
    if config["SECRET_KEY"] == config["CODE_HMAC_KEY"]:
        # One key for two purposes: rotating the signing key would also void every printed code.
        raise ConfigError(f"SECRET_KEY and CODE_HMAC_KEY must be different. Make each with: {GENERATE_COMMAND}")
    if config["BASE_URL"].startswith("http://") and "127.0.0.1" not in config["BASE_URL"]:
        raise ConfigError("BASE_URL must use https outside development")
