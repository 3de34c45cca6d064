"""Acceptance records, CSV export and the ledger check."""

from . import access  # noqa: F401  (loaded first: staff only, own school only)
