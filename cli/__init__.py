"""The ``copycat`` command line."""
