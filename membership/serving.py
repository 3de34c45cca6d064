"""Serving with gunicorn: an access log that never shows a one-time token."""

from __future__ import annotations

from gunicorn.glogging import Logger

from . import MaskTokens, mask_tokens


class MaskedLogger(Logger):
    """gunicorn's logger with token-bearing paths masked in every access-log field.

    /invite/<token>, /me/sign-in/<token> and the other one-time links appear as /invite/*** in
    the request line, the path, the referrer and any header or environ field a format uses, and
    in the error log's "Error handling request" lines.
    """

    def setup(self, cfg) -> None:
        """Also mask the error log: gunicorn names the request (token and all) when a handler fails."""
        super().setup(cfg)
        if not any(isinstance(f, MaskTokens) for f in self.error_log.filters):
            self.error_log.addFilter(MaskTokens())

    def atoms(self, resp, req, environ, request_time):
        """The access-log fields, masked."""
        atoms = super().atoms(resp, req, environ, request_time)
        # Only a value with a slash can hold a token path; skipping the rest keeps the log cheap.
        return {
            key: mask_tokens(value) if isinstance(value, str) and "/" in value else value
            for key, value in atoms.items()
        }
