"""Class lists, codes, letters, carer invitations and blocks."""

from . import access  # noqa: F401  (loaded first: staff only, own school only)
