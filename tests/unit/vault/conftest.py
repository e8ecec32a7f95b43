"""A migrated SQLite database and a fake clock for the vault's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tabard.clock import FakeClock
from tabard.store import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 't.db'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
