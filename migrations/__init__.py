"""Alembic migrations (a package so that the installed service can find them)."""
