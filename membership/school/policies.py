"""Publishing documents, their history and diffs."""

from . import access  # noqa: F401  (loaded first: staff only, own school only)
