"""Agent instances: one record per running process of an instance-template entry.

A process is known by ``(node, entry, pid, start time)``: the kernel never gives the same pid
and start time to two processes of one boot, so while that key holds, the process keeps its
instance ID; a restart (new pid or start time) gets a new one. IDs are ULIDs minted here and
never reused, because the table keeps every instance ever issued (``retired_at`` marks the
ones known to be gone). The evidence the node reported is kept beside the ID.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from tabard.registry.errors import InvalidInstanceError
from tabard.registry.selectors import Selector, parse_selectors
from tabard.spiffe import SpiffeId

__all__ = [
    "AgentInstance",
    "InstanceQuery",
    "InstanceReport",
    "Registration",
    "is_ulid",
    "new_ulid",
]

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_ULID = re.compile(r"[0-7][0-9abcdefghjkmnpqrstvwxyz]{25}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_ID = 2**32 - 1
MAX_PATH = 4096


def new_ulid(now: datetime) -> str:
    """A ULID (https://github.com/ulid/spec): 48-bit milliseconds + 80 random bits.

    Written as 26 lowercase Crockford base32 characters, so IDs sort by creation time and
    are valid SPIFFE path segments.
    """
    millis = int(now.timestamp() * 1000)
    if not 0 <= millis < 1 << 48:
        raise ValueError("time out of ULID range")
    value = (millis << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_ulid(value: str) -> bool:
    return isinstance(value, str) and _ULID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceReport:
    """What a node observed about a process (node-api.md, ``POST /node/v1/instances``)."""

    entry_id: str
    pid: int
    start_time: float
    uid: int
    gid: int
    exe_path: str
    exe_sha256: str
    selectors: tuple[Selector, ...]
    parent_instance_id: str | None = None

    def __post_init__(self) -> None:
        for name, value, low in (("pid", self.pid, 1), ("uid", self.uid, 0),
                                 ("gid", self.gid, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= (
                _MAX_ID
            ):
                raise InvalidInstanceError(f"{name} must be an integer in {low}..{_MAX_ID}")
        if (isinstance(self.start_time, bool) or not isinstance(self.start_time, int | float)
                or not math.isfinite(self.start_time) or self.start_time < 0):
            raise InvalidInstanceError("start_time must be a non-negative number of seconds")
        object.__setattr__(self, "start_time", float(self.start_time))
        if (not isinstance(self.exe_path, str) or not self.exe_path.startswith("/")
                or len(self.exe_path) > MAX_PATH or "\x00" in self.exe_path):
            raise InvalidInstanceError("exe_path must be an absolute path")
        if not isinstance(self.exe_sha256, str) or not _SHA256.fullmatch(self.exe_sha256):
            raise InvalidInstanceError("exe_sha256 must be 64 lowercase hexadecimal characters")
        object.__setattr__(self, "selectors", parse_selectors(self.selectors))
        if self.parent_instance_id is not None and not is_ulid(self.parent_instance_id):
            object.__setattr__(self, "parent_instance_id", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInstance:
    """One process that holds (or held) an instance identity."""

    id: str
    node_id: str
    entry_id: str
    spiffe_id: SpiffeId
    agent: str | None
    pid: int
    start_time: float
    uid: int
    gid: int
    exe_path: str
    exe_sha256: str
    selectors: tuple[Selector, ...]
    parent_instance_id: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    retired_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    """The result of registering a process: its instance and whether it was new."""

    instance: AgentInstance
    created: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceQuery:
    """Filters for listing instances; newest first, at most ``limit``."""

    agent: str | None = None
    node_id: str | None = None
    entry_id: str | None = None
    limit: int = 1000

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 10_000:
            raise InvalidInstanceError("limit must be between 1 and 10000")

