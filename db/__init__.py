"""Postgres/SQLite persistence: SQLAlchemy models, sessions, migrations and named queries."""
