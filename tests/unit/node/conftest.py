"""A running node (agent + Workload API on a real Unix socket) over the in-memory server."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tabard.node import AgentTimings, NodeAgent, NodeService, NodeSettings
from tabard.node.ports import Entry, NodeServerClient
from tabard.node.state import NodeStateStore
from tests.unit.node.fake_server import FakeNodeServer

FAST = AgentTimings(
    sync_interval=0.2,
    tick=0.1,
    seen_interval=0.2,
    backoff_base=0.05,
    backoff_cap=0.5,
    push_jitter=0.0,
)
PYTHON = os.path.realpath(sys.executable)
UID_SELECTORS = ("unix:uid:0", f"unix:path:{PYTHON}")


@dataclass
class RunningNode:
    fake: FakeNodeServer
    service: NodeService
    socket_path: Path
    data_dir: Path

    @property
    def uri(self) -> str:
        return "unix://" + str(self.socket_path)

    @property
    def agent(self) -> NodeAgent:
        assert self.service.agent is not None
        return self.service.agent

    def sync(self) -> None:
        """Sync now instead of waiting for the next poll."""
        self.service.call(self.agent.sync_once)

    def add_entry(self, spiffe_id: str, selectors: Sequence[str], **kwargs: Any) -> Entry:
        entry = self.fake.add_entry(spiffe_id, selectors, **kwargs)
        self.sync()
        return entry


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory path: Unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="tn-"))
    os.chmod(path, 0o755)  # another uid must reach the socket inside
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake() -> FakeNodeServer:
    return FakeNodeServer()


def start_node(fake: FakeNodeServer, directory: Path, *, token: str | None = None,
               timings: AgentTimings = FAST) -> RunningNode:
    async def factory(settings: NodeSettings, state: NodeStateStore) -> NodeServerClient:
        return fake

    settings = NodeSettings(
        server_url="http://127.0.0.1:1",
        socket_path=directory / "agent.sock",
        data_dir=directory / "data",
        join_token=token if token is not None else fake.new_join_token(),
        timings=timings,
    )
    service = NodeService(settings, client_factory=factory)
    service.start(timeout=30)
    return RunningNode(fake, service, settings.socket_path, settings.data_dir)


@pytest.fixture
def node(fake: FakeNodeServer, short_dir: Path) -> Iterator[RunningNode]:
    running = start_node(fake, short_dir)
    try:
        yield running
    finally:
        running.service.stop()
