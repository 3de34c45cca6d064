"""The staff concerns inbox."""
