"""The staff incident log per member."""
