"""The store contract tests' database: migrated on the backend the test runs on (SQLite,
or the suite's own PostgreSQL: the ``database_url`` fixture of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tabard.store import Database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()
