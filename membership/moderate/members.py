"""Members: the match list, seen in the chat, removal, invites and the chat link."""

from . import access  # noqa: F401  (loaded first: sign-in and notice gate)
