"""The Workload API socket: a peer-credential-aware front for the gRPC server.

grpcio hands a handler the peer's address (``context.peer()``) but never the socket, so
``SO_PEERCRED`` cannot be read where a call is served, and a Unix client's address is
normally empty. So the node does not let gRPC own the public socket:

1. :class:`PeerCredentialListener` accepts on the public socket itself and reads the kernel's
   peer credentials (``SO_PEERCRED``, plus ``SO_PEERPIDFD`` where the kernel has it, and the
   boot-clock time of the accept) from the accepted socket;
2. it opens one upstream connection per accepted one to the gRPC server's private socket,
   from a client socket **bound to a fresh unique path** in a private directory (0700, owned
   by the node) and records ``path → credentials`` before connecting;
3. bytes are relayed both ways unchanged; the gRPC server sees ``unix:<that path>`` as the
   peer of every call on the connection and looks the credentials up with
   :meth:`PeerCredentialListener.connection_for`.

Why a caller cannot take another process's identity: the credentials are the kernel's, read
from the connection the caller opened; only the node can reach the private socket (its
directory is 0700), so every connection gRPC serves came through the relay, and the relay
chooses the bound path, never the caller. A call whose peer is unknown is refused. One
accepted connection maps to exactly one upstream connection, so HTTP/2 multiplexing cannot
mix callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tabard.attestation.unix import (
    PeerCredentials,
    ProcessAttestationError,
    boot_time_now,
    peer_credentials,
    peer_pidfd,
)
from tabard.node.errors import NodeConfigError

__all__ = ["MAX_SOCKET_PATH", "Connection", "PeerCredentialListener"]

log = logging.getLogger("tabard.node")
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL


@dataclass(frozen=True)
class Connection:
    """What the kernel said about one accepted Workload API connection."""

    credentials: PeerCredentials
    pidfd: int | None
    accepted_boot_time: float


class _Upstream(asyncio.Protocol):
    def __init__(self, down: _Downstream) -> None:
        self._down = down

    def data_received(self, data: bytes) -> None:
        self._down.send_down(data)

    def eof_received(self) -> bool:
        self._down.eof_down()
        return True

    def pause_writing(self) -> None:
        self._down.pause()

    def resume_writing(self) -> None:
        self._down.resume()

    def connection_lost(self, exc: Exception | None) -> None:
        self._down.close()


class _Downstream(asyncio.Protocol):
    def __init__(self, listener: PeerCredentialListener) -> None:
        self._listener = listener
        self._transport: asyncio.Transport | None = None
        self._upstream: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._pending_eof = False
        self._name: str | None = None
        self._pidfd: int | None = None
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._listener.opened(self)
        sock = transport.get_extra_info("socket")
        try:
            accepted = boot_time_now()
            creds = peer_credentials(sock)
        except ProcessAttestationError:
            transport.close()
            return
        self._pidfd = peer_pidfd(sock)
        conn = Connection(creds, self._pidfd, accepted)
        self._task = asyncio.get_running_loop().create_task(self._connect(conn))

    async def _connect(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        name = self._listener.next_client_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.bind(name)
            self._name = name
            self._listener.register(name, conn)
            try:
                await loop.sock_connect(sock, self._listener.private_socket)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)  # the bound name stays attached to the socket
            upstream, _ = await loop.create_unix_connection(lambda: _Upstream(self), sock=sock)
        except OSError as exc:
            sock.close()
            log.warning("Workload API relay could not reach the gRPC server: %s", exc)
            self.close()
            return
        if self._closed:
            upstream.close()
            return
        self._upstream = upstream
        for chunk in self._pending:
            upstream.write(chunk)
        self._pending.clear()
        if self._pending_eof and upstream.can_write_eof():
            upstream.write_eof()

    def data_received(self, data: bytes) -> None:
        if self._upstream is not None:
            self._upstream.write(data)
        else:
            self._pending.append(data)

    def eof_received(self) -> bool:
        if self._upstream is not None:
            if self._upstream.can_write_eof():
                self._upstream.write_eof()
        else:
            self._pending_eof = True
        return True

    def pause_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()

    # called by the upstream side
    def send_down(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def eof_down(self) -> None:
        if self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()

    def pause(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._listener.closed(self)
        if self._upstream is not None:
            self._upstream.close()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._name is not None:
            self._listener.unregister(self._name)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class PeerCredentialListener:
    """Accepts on ``public_path`` and relays each connection to the private gRPC socket."""

    def __init__(self, public_path: Path, *, mode: int = 0o777) -> None:
        public = str(public_path)
        if not public_path.is_absolute():
            raise NodeConfigError(f"the Workload API socket path must be absolute: {public}")
        if len(public.encode()) > MAX_SOCKET_PATH:
            raise NodeConfigError(f"socket path longer than {MAX_SOCKET_PATH} bytes: {public}")
        self.public_path = public_path
        self._mode = mode
        self._dir = tempfile.mkdtemp(prefix="tabard-wl-")  # 0700, unique, short
        self.private_socket = os.path.join(self._dir, "grpc.sock")
        self._counter = itertools.count()
        self._connections: dict[str, Connection] = {}
        self._open: set[_Downstream] = set()
        self._server: asyncio.Server | None = None

    @property
    def grpc_target(self) -> str:
        """What the gRPC server binds: ``unix:<private socket>``."""
        return "unix:" + self.private_socket

    def next_client_path(self) -> str:
        return os.path.join(self._dir, f"c{next(self._counter)}")

    def opened(self, relay: _Downstream) -> None:
        self._open.add(relay)

    def closed(self, relay: _Downstream) -> None:
        self._open.discard(relay)

    def register(self, name: str, conn: Connection) -> None:
        self._connections[name] = conn

    def unregister(self, name: str) -> None:
        self._connections.pop(name, None)

    def connection_for(self, peer: str) -> Connection | None:
        """The connection behind a gRPC ``context.peer()`` string, if it came through here."""
        if not peer.startswith("unix:"):
            return None
        return self._connections.get(peer[len("unix:") :])

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        path = self.public_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise NodeConfigError(f"{path} exists and is not a socket")
            path.unlink()  # a stale socket from an earlier run
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Downstream(self), str(path))
        os.chmod(path, self._mode)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for relay in list(self._open):
                relay.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.public_path.unlink()
        shutil.rmtree(self._dir, ignore_errors=True)
