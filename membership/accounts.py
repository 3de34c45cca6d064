"""Signing staff and moderators in: password checks that say nothing about which part was wrong."""

from __future__ import annotations

from functools import cache

from sqlmodel import Session, select

from . import passwords
from .models import User
from .validation import Invalid
from .validation import email as valid_email


@cache
def _dummy_hash() -> str:
    """Checked against when no account matches, so a wrong email costs as long as a wrong password.

    Made on first use, not at import: Argon2 takes 64 MiB for a moment, which every process
    (CLI commands, workers that never see a sign-in) would otherwise pay when it starts.
    """
    return passwords.hash_password("classgate-no-such-account")


class SignInFailed(Exception):
    """The email and password did not match an active account (deliberately not said which)."""


def authenticate(session: Session, email: str, password: str) -> User:
    """The active account with this email and password, or SignInFailed."""
    try:
        address = valid_email(email)
    except Invalid:
        address = None
    user = session.exec(select(User).where(User.email == address)).first() if address else None
    if user is None or not user.password_hash:
        passwords.check_password(_dummy_hash(), password or "")
        raise SignInFailed()
    if not passwords.check_password(user.password_hash, password or "") or not user.active:
        raise SignInFailed()
    return user


def load_user(session: Session, session_id: str) -> User | None:
    """The account a session refers to, unless its password has changed since sign-in."""
    user_id, _, _fingerprint = (session_id or "").partition(":")
    if not user_id.isdigit():
        return None
    user = session.get(User, int(user_id))
    if user is None or not user.active or user.get_id() != session_id:
        return None
    return user


def safe_next(target: str | None) -> str | None:
    """A same-site path to return to after sign-in; anything else (another host, //evil) is dropped."""
    from urllib.parse import urlsplit

    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
