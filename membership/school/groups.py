"""Groups and moderators."""

from . import access  # noqa: F401  (loaded first: staff only, own school only)
