"""Signals that exist only for the tests."""
