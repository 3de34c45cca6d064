"""Classgate in a real browser: parents', moderators' and staff journeys, every page checked for accessibility."""
