"""Kinds of evidence that two videos share footage (``base.py`` the interface, ``registry.py`` the list)."""
