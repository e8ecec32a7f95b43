"""Fixtures shared by the whole suite; their logic lives in ``tests/support``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import (
    PostgresServer,
    PostgresUnavailable,
    server_from_environment,
    unavailable,
    unique_database_name,
)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session: ``TABARD_TEST_DATABASE_URL`` or a throwaway cluster.

    Fails when ``CI=true`` and no server can be had; skips the tests that need it otherwise.
    """
    try:
        server = server_from_environment()
    except PostgresUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLAlchemy URL of an empty database owned by this test alone, on each backend.

    PostgreSQL databases get a unique name per test and are dropped at teardown.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tabard.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_cluster")
    name = unique_database_name(request.node.name)
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)
