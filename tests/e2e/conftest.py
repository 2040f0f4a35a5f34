"""Fixtures of the browser tests (see e2e_support.py)."""
from e2e_support import browser  # noqa: F401 - a fixture, found by pytest by its name
