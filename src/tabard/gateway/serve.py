"""Serving the gateway on uvicorn: as a coroutine beside the server's listeners (``tabard
dev``) or alone (``tabard gateway``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import uvicorn

from tabard.gateway.service import Gateway

__all__ = ["serve_gateway"]


class _Server(uvicorn.Server):
    """Signals are left to whoever runs the event loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_gateway(gateway: Gateway, host: str, port: int, *,
                        public_url: str | None = None,
                        on_ready: Callable[[str], None] | None = None,
                        handle_signals: bool = False) -> None:
    """Serve until cancelled (or, with ``handle_signals``, SIGINT/SIGTERM). Once listening
    the gateway learns its public URL (``public_url`` or the bound address) and
    ``on_ready`` gets it."""
    config = uvicorn.Config(gateway, host=host, port=port, log_config=None, access_log=False,
                            server_header=False, timeout_graceful_shutdown=5, http="httptools",
                            proxy_headers=False)  # an agent never names its own address
    server = uvicorn.Server(config) if handle_signals else _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.02)
        bound = next(int(s.getsockname()[1]) for srv in server.servers for s in srv.sockets)
        shown = host if host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
        url = (public_url or f"http://{shown}:{bound}").rstrip("/")
        gateway.bind(url)
        if on_ready is not None:
            on_ready(url)
        await task
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await gateway.aclose()
