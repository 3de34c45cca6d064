"""The session cookie: Flask's signed cookie, with its serializer built once rather than per request."""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class SignedCookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions; the serializer is kept while the keys stay the same.

    Flask builds a new serializer to read the cookie and another to write it on every request,
    and each one checks its JSON serializer by encoding a test value. A serializer keeps nothing
    from one cookie to the next, so one per set of keys serves every request of the process.
    """

    def __init__(self) -> None:
        self._built: tuple[tuple, URLSafeTimedSerializer | None] = ((), None)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """The serializer for the app's current key and fallbacks (None without a key, as Flask's)."""
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        built_for, serializer = self._built
        if built_for != keys:
            serializer = super().get_signing_serializer(app)
            self._built = (keys, serializer)
        return serializer
