"""Running a node: :func:`run_node` (blocking, for ``tabard node``) and :class:`NodeService`
(a background thread with ``start()``/``stop()``, for ``tabard dev`` and tests).

Both do the same: discover the server (:func:`tabard.node.serverclient.discover`), restore or
attest the node identity, start the agent's loops and serve the Workload API, then call
``ready`` with a :class:`NodeReady`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabard.clock import Clock, SystemClock
from tabard.node.agent import AgentTimings, NodeAgent
from tabard.node.ports import NodeServerClient
from tabard.node.serverclient import HttpNodeServerClient, discover
from tabard.node.state import NodeStateStore
from tabard.node.workload import WorkloadApiServer
from tabard.signals import SignalFollower
from tabard.spiffe import SpiffeId, TrustDomain

__all__ = ["ClientFactory", "NodeReady", "NodeService", "NodeSettings", "run_node", "serve_node"]

log = logging.getLogger("tabard.node")


@dataclass(frozen=True)
class NodeSettings:
    """Everything ``tabard node`` is started with."""

    server_url: str
    socket_path: Path
    data_dir: Path
    join_token: str | None = field(default=None, repr=False)
    trust_bundle: Path | None = None
    socket_mode: int = 0o777
    timings: AgentTimings = field(default_factory=AgentTimings)


@dataclass(frozen=True)
class NodeReady:
    """Handed to ``ready`` once the Workload API accepts calls."""

    socket_path: Path
    workload_socket: str  # unix:///abs/path, the SPIFFE_ENDPOINT_SOCKET form
    node_spiffe_id: SpiffeId
    trust_domain: TrustDomain


ClientFactory = Callable[[NodeSettings, NodeStateStore], Awaitable[NodeServerClient]]
"""Builds the server client; the default discovers the server over HTTP(S)."""


async def _http_client(settings: NodeSettings, state: NodeStateStore) -> NodeServerClient:
    saved_td = state.saved_trust_domain()
    pinned = state.load_bundle(saved_td) if saved_td is not None else None
    discovery = await discover(
        settings.server_url, trust_bundle=settings.trust_bundle, pinned_bundle=pinned
    )
    return HttpNodeServerClient(discovery)


async def serve_node(
    settings: NodeSettings,
    stop: asyncio.Event,
    *,
    ready: Callable[[NodeReady], None] | None = None,
    clock: Clock | None = None,
    client_factory: ClientFactory | None = None,
    on_agent: Callable[[NodeAgent], None] | None = None,
) -> None:
    """Run a node on the current event loop until ``stop`` is set."""
    state = NodeStateStore(settings.data_dir)
    client = await (client_factory or _http_client)(settings, state)
    agent = NodeAgent(
        client,
        clock=clock or SystemClock(),
        state=state,
        join_token=settings.join_token,
        timings=settings.timings,
    )
    if on_agent is not None:
        on_agent(agent)
    server: WorkloadApiServer | None = None
    follower_task: asyncio.Task[None] | None = None
    try:
        await agent.start()
        if isinstance(client, HttpNodeServerClient):
            # the kill switch: follow the signal stream over the node API's mTLS; on every
            # change the Workload API streams re-evaluate their callers
            follower = SignalFollower(
                client.http, client.node_api_url,
                heartbeat_timeout=settings.timings.signal_heartbeat_timeout,
                resync_interval=settings.timings.signal_resync_interval)
            agent.use_kill_list(follower.kill_list)
            follower.on_change(agent.kill_list_changed)
            follower_task = asyncio.get_running_loop().create_task(follower.run())
            with contextlib.suppress(TimeoutError):  # serve meanwhile; enforce once synced
                await asyncio.wait_for(follower.synced.wait(), 5.0)
        server = WorkloadApiServer(agent, settings.socket_path, socket_mode=settings.socket_mode)
        await server.start()
        if ready is not None:
            ready(
                NodeReady(
                    socket_path=settings.socket_path,
                    workload_socket=server.uri,
                    node_spiffe_id=agent.node_spiffe_id,
                    trust_domain=agent.trust_domain,
                )
            )
        await stop.wait()
    finally:
        if follower_task is not None:
            follower_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower_task
        if server is not None:
            await server.stop()
        await agent.stop()
        await client.aclose()


def run_node(settings: NodeSettings, ready: Callable[[NodeReady], None] | None = None) -> None:
    """Run a node in the foreground until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_node(settings, stop, ready=ready)

    asyncio.run(main())


class NodeService:
    """A node on its own thread and event loop: ``start()`` returns once it serves."""

    def __init__(
        self,
        settings: NodeSettings,
        *,
        clock: Clock | None = None,
        client_factory: ClientFactory | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._factory = client_factory
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._info: NodeReady | None = None
        self.agent: NodeAgent | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 60.0) -> NodeReady:
        """Start the node; raises what made it fail (e.g. a refused join token)."""
        if self._thread is not None:
            raise RuntimeError("the node service is already started")
        self._thread = threading.Thread(target=self._run, name="tabard-node", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"the node did not become ready within {timeout:.0f}s")
        if self._error is not None:
            self._thread.join(5)
            raise self._error
        assert self._info is not None
        return self._info

    def _set_agent(self, agent: NodeAgent) -> None:
        self.agent = agent

    def _on_ready(self, info: NodeReady) -> None:
        self._info = info
        self._ready.set()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve_node(
                self.settings,
                self._stop,
                ready=self._on_ready,
                clock=self._clock,
                client_factory=self._factory,
                on_agent=self._set_agent,
            )

        try:
            asyncio.run(main())
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = exc
            else:
                log.exception("the node stopped with an error")
        finally:
            self._ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already finished
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(timeout)
        self._thread = None

    def call(self, fn: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 30.0) -> Any:
        """Run a coroutine on the node's loop from another thread (tests, diagnostics)."""
        if self._loop is None:
            raise RuntimeError("the node service is not running")
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout)
