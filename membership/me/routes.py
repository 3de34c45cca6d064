"""Views for /me/."""
