"""Run the server's listeners in one event loop: the REST API and the node API (mTLS).

Both serve the same application; node routes only ever see a client certificate on the node
listener, because only it puts one into the ASGI scope (:mod:`tabard.server.tls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from tabard.server.tls import NodeApiTls, PeerCertH11Protocol

__all__ = ["Endpoints", "Listener", "serve_listeners"]

log = logging.getLogger("tabard.server")


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    tls_cert: str | None = None
    tls_key: str | None = None
    public_url: str | None = None


@dataclass(frozen=True)
class Endpoints:
    server_url: str
    node_api_url: str | None


def _url(server: uvicorn.Server, listener: Listener, scheme: str) -> str:
    if listener.public_url:
        return listener.public_url.rstrip("/")
    port = next(int(s.getsockname()[1]) for srv in server.servers for s in srv.sockets)
    host = listener.host if listener.host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    return f"{scheme}://{host}:{port}"


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve_listeners`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _rest_server(app: FastAPI, listener: Listener) -> uvicorn.Server:
    return _Server(uvicorn.Config(
        app, host=listener.host, port=listener.port, log_config=None, access_log=False,
        ssl_certfile=listener.tls_cert, ssl_keyfile=listener.tls_key, server_header=False,
        timeout_graceful_shutdown=5, http="h11",
    ))


def _node_server(app: FastAPI, listener: Listener, tls: NodeApiTls) -> uvicorn.Server:
    def context_factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]
                        ) -> ssl.SSLContext:
        return tls.context

    config = uvicorn.Config(
        app, host=listener.host, port=listener.port, log_config=None, access_log=False,
        server_header=False, timeout_graceful_shutdown=5,
        http=PeerCertH11Protocol.bound_to(tls), ssl_context_factory=context_factory,
        lifespan="off",
    )
    return _Server(config)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    while not server.started:
        if task.done():
            return False
        await asyncio.sleep(0.02)
    return True


async def serve_listeners(
    app: FastAPI,
    rest: Listener,
    *,
    node_api: Listener | None = None,
    tls: NodeApiTls | None = None,
    background: list[Coroutine[Any, Any, None]] | None = None,
    on_ready: Callable[[Endpoints], None] | None = None,
) -> None:
    """Serve until a listener stops (SIGINT/SIGTERM stop both)."""
    rest_server = _rest_server(app, rest)
    servers = [rest_server]
    node_server = None
    if node_api is not None:
        if tls is None:
            raise ValueError("the node API needs its TLS context")
        node_server = _node_server(app, node_api, tls)
        servers.append(node_server)
    # long-lived responses (the signal stream) end when this is set, so shutdown is prompt
    app.state.stopping = asyncio.Event()

    def stop() -> None:
        app.state.stopping.set()
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    helpers = [asyncio.create_task(c) for c in (background or [])]
    try:
        ok = all([await _started(s, t) for s, t in zip(servers, tasks, strict=True)])
        if ok:
            endpoints = Endpoints(
                _url(rest_server, rest, "https" if rest.tls_cert else "http"),
                _url(node_server, node_api, "https") if node_server and node_api else None,
            )
            app.state.endpoints = endpoints
            log.info("server listening", extra={"url": endpoints.server_url,
                                                "node_api_url": endpoints.node_api_url})
            if on_ready is not None:
                on_ready(endpoints)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await asyncio.gather(*tasks, return_exceptions=True)
        for helper in helpers:
            helper.cancel()
        for helper in helpers:
            with contextlib.suppress(asyncio.CancelledError):
                await helper
