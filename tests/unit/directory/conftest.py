"""A directory over the real SQL stores on a throwaway SQLite file, with a fake clock and a
listener that records what it is told."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from tabard.clock import FakeClock
from tabard.directory import Directory
from tabard.store import Database, SqlGroupStore, SqlScimTokenStore, SqlUserStore


@dataclass
class RecordingListener:
    events: list[tuple[str, bool, bool, datetime]] = field(default_factory=list)

    def user_status_changed(self, user_name: str, active: bool, deleted: bool,
                            at: datetime) -> None:
        self.events.append((user_name, active, deleted, at))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
def directory(tmp_path: Path, clock: FakeClock,
              listener: RecordingListener) -> Iterator[Directory]:
    db = Database(f"sqlite:///{tmp_path / 'directory.db'}")
    db.migrate()
    try:
        yield Directory.build(SqlUserStore(db), SqlGroupStore(db), SqlScimTokenStore(db), clock,
                              listeners=[listener], max_results=50)
    finally:
        db.dispose()
