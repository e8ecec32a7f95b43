"""A running ``tabard dev`` shared by the tests of a module (SQLite), plus per-backend ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.platform import DevPlatform


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevPlatform]:
    with DevPlatform(tmp_path_factory.mktemp("dev")) as running:
        yield running


@pytest.fixture
def backend_platform(database_url: str, tmp_path: Path) -> Iterator[DevPlatform]:
    """``tabard dev`` on the test's own database: SQLite and PostgreSQL in turn."""
    with DevPlatform(tmp_path / "dev", database_url=database_url) as running:
        yield running
