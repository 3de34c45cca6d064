"""Serving with gunicorn: an access log that never shows a one-time token."""

from __future__ import annotations

from gunicorn.glogging import Logger

from . import mask_tokens


class MaskedLogger(Logger):
    """gunicorn's logger with token-bearing paths masked in every access-log field.

    /invite/<token>, /me/sign-in/<token> and the other one-time links appear as /invite/*** in
    the request line, the path, the referrer and any header or environ field a format uses.
    """

    def atoms(self, resp, req, environ, request_time):
        """The access-log fields, masked."""
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: mask_tokens(value) if isinstance(value, str) else value for key, value in atoms.items()}
