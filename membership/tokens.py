"""Signed, salted tokens: one serializer per purpose, each with its own lifetime.

A token proves only that Classgate issued it for that purpose and that it is young enough;
one-time use is enforced by the database row it names (its nonce hash and used_at).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class TokenInvalid(Exception):
    """The token was not issued by Classgate for this purpose, or was altered."""


class TokenExpired(Exception):
    """The token was genuine but is older than its purpose allows."""


# How long a token of each purpose stays valid, from the app's settings.
LIFETIMES: dict[str, Callable[[dict], timedelta]] = {
    "invite": lambda cfg: timedelta(hours=cfg["INVITE_MAX_AGE_HOURS"]),
    "carer-invitation": lambda cfg: timedelta(days=cfg["CARER_INVITATION_DAYS"]),
    "verify-email": lambda cfg: timedelta(hours=cfg["RESERVATION_HOURS"]),
    "set-password": lambda cfg: timedelta(hours=48),
    # A member may be away for a half-term or longer; the link only ever records agreement.
    "reagree": lambda cfg: timedelta(days=30),
    # A parent's sign-in link for /me/: short-lived, and used once (its row's used_at).
    "parent-sign-in": lambda cfg: timedelta(minutes=cfg["PARENT_LINK_MINUTES"]),
}


def lifetime(purpose: str) -> timedelta:
    """How long a token of this purpose stays valid."""
    return LIFETIMES[purpose](current_app.config)


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    if purpose not in LIFETIMES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return _serializer_for(current_app.config["SECRET_KEY"], purpose)


@lru_cache(maxsize=64)
def _serializer_for(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    """Built once per key and purpose: a serializer keeps nothing from one token to the next."""
    return URLSafeTimedSerializer(secret_key, salt=f"classgate.{purpose}")


def issue(purpose: str, payload: dict) -> str:
    """Sign a payload for one purpose."""
    return _serializer(purpose).dumps(payload)


def load(purpose: str, token: str) -> dict:
    """Check a token's signature, purpose and age; return its payload."""
    try:
        payload = _serializer(purpose).loads(token, max_age=int(lifetime(purpose).total_seconds()))
    except SignatureExpired as exc:
        raise TokenExpired(purpose) from exc
    except BadSignature as exc:
        raise TokenInvalid(purpose) from exc
    if not isinstance(payload, dict):
        raise TokenInvalid(purpose)
    return payload


def new_nonce() -> tuple[str, str]:
    """A fresh 128-bit secret and the hash stored in its place."""
    nonce = secrets.token_urlsafe(16)
    return nonce, hash_nonce(nonce)


def hash_nonce(nonce: str) -> str:
    """The stored form of a token's secret part."""
    return hashlib.sha256(nonce.encode()).hexdigest()


def nonce_matches(nonce: object, stored_hash: str) -> bool:
    """Compare a presented secret with the stored hash in constant time."""
    if not isinstance(nonce, str):
        return False
    return hmac.compare_digest(hash_nonce(nonce), stored_hash)
