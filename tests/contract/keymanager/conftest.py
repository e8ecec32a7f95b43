"""Fixtures of the key manager contract: every implementation runs the same suite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tabard.authority.keymanager import DiskKeyManager, KeyManager, MemoryKeyManager

KEK = b"contract-suite-key-encryption-key"

ManagerFactory = Callable[[], KeyManager]


@pytest.fixture(params=["memory", "disk"])
def open_manager(request: pytest.FixtureRequest, tmp_path: Path) -> ManagerFactory:
    """Opens the implementation under test; for disk, each call opens the same directory."""
    if request.param == "memory":
        return MemoryKeyManager
    return lambda: DiskKeyManager(tmp_path / "keys", KEK)


@pytest.fixture
def manager(open_manager: ManagerFactory) -> KeyManager:
    return open_manager()
