"""Views for /concerns/."""
