"""Unix workload attestation: who is on the other end of a Unix socket, from the kernel alone.

The evidence comes from the kernel's peer credentials on the connected socket (``SO_PEERCRED``:
pid, uid, gid, recorded by the kernel at ``connect()``) and from ``/proc/<pid>``: the
executable (``/proc/<pid>/exe``), its SHA-256, the parent pid and the start time. Nothing the
workload says about itself is used, so it needs no secret and cannot choose its selectors.

Selectors (all must be present for an entry to match): ``unix:uid:N``, ``unix:gid:N``,
``unix:user:NAME``, ``unix:group:NAME``, ``unix:path:/abs`` and ``unix:sha256:HEX``.

Pid reuse is the classic hole of pid-based attestation: the connecting process exits and an
unrelated one gets its pid before ``/proc`` is read. Three guards close it:

* ``SO_PEERPIDFD`` (Linux 6.5+) gives a pidfd for the connecting process itself; after every
  ``/proc`` read the pidfd is polled, and a process that has exited fails attestation. While
  the process lives its pid cannot be given to anyone else, so what ``/proc`` said was about it.
* Without a pidfd, a process whose start time is later than the moment the connection was
  accepted cannot be the one that connected (``accepted_boot_time``).
* The start time (field 22 of ``/proc/<pid>/stat``) is read before and after the executable
  is hashed; a change means the pid now names another process.

The executable is hashed through ``/proc/<pid>/exe`` (the file the process runs, even when its
path was replaced or deleted), once per file version: the cache key is the opened file's
``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)``. The change time is in the key
because ``mtime`` can be set back by the file's owner while ``ctime`` cannot.

Limits: peer credentials name the process that called ``connect()``. A socket handed to
another process (by ``fork`` or ``SCM_RIGHTS``) keeps the connector's identity while the
connector lives; that is inherent in ``SO_PEERCRED`` and the reason callers re-attest on
every request.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import select
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from tabard.errors import Denied

__all__ = [
    "SELECTOR_TYPE",
    "ExecutableHasher",
    "PeerCredentials",
    "ProcessAttestationError",
    "ProcessEvidence",
    "attest_peer",
    "attest_process",
    "boot_time_now",
    "peer_credentials",
    "peer_pidfd",
    "process_ancestry",
    "process_start_ticks",
]

SELECTOR_TYPE = "unix"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)  # Linux 6.5+; Python 3.11 lacks the name
_UCRED = struct.Struct("3i")
_STARTTIME_INDEX = 19  # field 22 of /proc/<pid>/stat, counted after the ")" of comm (field 3)
_MAX_ANCESTRY = 4096


class ProcessAttestationError(Denied):
    """The caller could not be attested; ``reason`` is a stable word.

    Reasons: ``process_gone`` (it exited or /proc cannot be read), ``pid_reused`` (the pid
    names another process now), ``executable_changed`` (the file changed while hashed),
    ``no_credentials`` (the socket carries no peer credentials).
    """

    code = "workload_attestation_failed"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """What the kernel recorded about the process that connected a Unix socket."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class ProcessEvidence:
    """Everything known about one attested process; the input of selector matching."""

    pid: int
    uid: int
    gid: int
    ppid: int
    start_ticks: int
    exe_path: str
    exe_sha256: str
    user: str | None
    group: str | None

    @property
    def start_time(self) -> float:
        """Seconds since boot at which the process started (``/proc/<pid>/stat`` field 22)."""
        return self.start_ticks / CLOCK_TICKS

    @property
    def process_key(self) -> tuple[int, int]:
        """``(pid, start_ticks)``: names one process for the life of the machine's boot."""
        return (self.pid, self.start_ticks)

    def selectors(self) -> tuple[str, ...]:
        out = [f"unix:uid:{self.uid}", f"unix:gid:{self.gid}"]
        if self.user is not None:
            out.append(f"unix:user:{self.user}")
        if self.group is not None:
            out.append(f"unix:group:{self.group}")
        out.append(f"unix:path:{self.exe_path}")
        out.append(f"unix:sha256:{self.exe_sha256}")
        return tuple(out)


def boot_time_now() -> float:
    """Seconds since boot on the clock ``/proc/<pid>/stat`` start times use (CLOCK_BOOTTIME)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """``SO_PEERCRED`` of a connected Unix socket."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError as exc:
        raise ProcessAttestationError(
            "the socket has no peer credentials", reason="no_credentials"
        ) from exc
    pid, uid, gid = _UCRED.unpack(raw)
    if pid <= 0:
        raise ProcessAttestationError(
            "the peer's pid is not visible from here", reason="no_credentials"
        )
    return PeerCredentials(pid, uid, gid)


def peer_pidfd(sock: socket.socket) -> int | None:
    """A pidfd for the connecting process (``SO_PEERPIDFD``), or None on older kernels.

    The caller owns the descriptor and closes it.
    """
    try:
        return sock.getsockopt(socket.SOL_SOCKET, _SO_PEERPIDFD)
    except OSError:
        return None


def _read_stat(pid: int) -> tuple[int, int]:
    """``(ppid, start_ticks)`` from ``/proc/<pid>/stat``.

    ``comm`` (field 2) is in parentheses and may itself hold spaces and parentheses, so the
    fields are counted from the last ``)``.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ProcessAttestationError(f"process {pid} is gone", reason="process_gone") from exc
    end = data.rfind(b")")
    fields = data[end + 2 :].split()
    if end < 0 or len(fields) <= _STARTTIME_INDEX:
        raise ProcessAttestationError(
            f"/proc/{pid}/stat has an unexpected layout", reason="process_gone"
        )
    return int(fields[1]), int(fields[_STARTTIME_INDEX])


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if there is no such pid."""
    try:
        return _read_stat(pid)[1]
    except ProcessAttestationError:
        return None


def process_ancestry(pid: int) -> Iterator[tuple[int, int]]:
    """``(pid, start_ticks)`` of each ancestor of ``pid``, parent first, up to pid 1.

    Stops quietly where an ancestor has exited meanwhile.
    """
    seen = {pid}
    current = pid
    for _ in range(_MAX_ANCESTRY):
        try:
            parent = _read_stat(current)[0]
        except ProcessAttestationError:
            return
        if parent <= 0 or parent in seen:
            return
        start = process_start_ticks(parent)
        if start is None:
            return
        yield parent, start
        seen.add(parent)
        current = parent


class ExecutableHasher:
    """SHA-256 of executables, computed once per file version and shared by all callers.

    Thread-safe; a file being hashed by one thread is waited for, not hashed again.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._digests: OrderedDict[tuple[int, ...], str] = OrderedDict()
        self._pending: dict[tuple[int, ...], threading.Event] = {}
        self._lock = threading.Lock()
        self.hashes_computed = 0

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, ...]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def has(self, st: os.stat_result) -> bool:
        """Whether the file version ``st`` describes is hashed already (a cheap attestation)."""
        with self._lock:
            return self._key(st) in self._digests

    def digest(self, fd: int) -> str:
        """Hex SHA-256 of the open file ``fd`` (read from the start; ``fd`` is not moved)."""
        key = self._key(os.fstat(fd))
        while True:
            with self._lock:
                cached = self._digests.get(key)
                if cached is not None:
                    self._digests.move_to_end(key)
                    return cached
                waiting = self._pending.get(key)
                if waiting is None:
                    done = self._pending[key] = threading.Event()
                    break
            waiting.wait()
        try:
            digest = self._hash(fd)
            if self._key(os.fstat(fd)) != key:
                raise ProcessAttestationError(
                    "the executable changed while it was hashed", reason="executable_changed"
                )
            with self._lock:
                self._digests[key] = digest
                while len(self._digests) > self._max:
                    self._digests.popitem(last=False)
            self.hashes_computed += 1
            return digest
        finally:
            with self._lock:
                del self._pending[key]
            done.set()

    @staticmethod
    def _hash(fd: int) -> str:
        h = hashlib.sha256()
        offset = 0
        while chunk := os.pread(fd, 1 << 20, offset):
            h.update(chunk)
            offset += len(chunk)
        return h.hexdigest()


_default_hasher = ExecutableHasher()


def _name_of_user(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _name_of_group(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def _pidfd_exited(pidfd: int) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def attest_process(
    creds: PeerCredentials,
    *,
    pidfd: int | None = None,
    accepted_boot_time: float | None = None,
    hasher: ExecutableHasher | None = None,
) -> ProcessEvidence:
    """Evidence for the process named by ``creds`` (from ``SO_PEERCRED``).

    ``pidfd`` (from :func:`peer_pidfd`) and ``accepted_boot_time`` (:func:`boot_time_now`
    when the connection was accepted) guard against pid reuse; see the module docstring.
    uid and gid are the kernel's peer credentials, never read from the process.
    """
    pid = creds.pid
    _, start = _read_stat(pid)
    if accepted_boot_time is not None and start > (accepted_boot_time * CLOCK_TICKS) + 1:
        raise ProcessAttestationError(
            f"process {pid} started after the connection was made", reason="pid_reused"
        )
    try:
        exe_path = os.readlink(f"/proc/{pid}/exe")
        fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ProcessAttestationError(
            f"the executable of process {pid} cannot be read", reason="process_gone"
        ) from exc
    try:
        digest = (hasher or _default_hasher).digest(fd)
    finally:
        os.close(fd)
    user, group = _name_of_user(creds.uid), _name_of_group(creds.gid)
    ppid_after, start_after = _read_stat(pid)
    if start_after != start:
        raise ProcessAttestationError(f"pid {pid} was reused", reason="pid_reused")
    if pidfd is not None and _pidfd_exited(pidfd):
        raise ProcessAttestationError(f"process {pid} has exited", reason="process_gone")
    return ProcessEvidence(
        pid=pid,
        uid=creds.uid,
        gid=creds.gid,
        ppid=ppid_after,
        start_ticks=start,
        exe_path=exe_path,
        exe_sha256=digest,
        user=user,
        group=group,
    )


def attest_peer(sock: socket.socket, *, hasher: ExecutableHasher | None = None) -> ProcessEvidence:
    """Evidence for the process at the other end of the connected Unix socket ``sock``."""
    now = boot_time_now()  # later than the connect(): an upper bound on the peer's start
    creds = peer_credentials(sock)
    pidfd = peer_pidfd(sock)
    try:
        return attest_process(creds, pidfd=pidfd, accepted_boot_time=now, hasher=hasher)
    finally:
        if pidfd is not None:
            os.close(pidfd)
