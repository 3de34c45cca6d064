"""Pending requests: approve, reject, vouch."""

from . import access  # noqa: F401  (loaded first: sign-in and notice gate)
