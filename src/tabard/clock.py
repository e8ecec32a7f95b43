"""Injected time. Nothing below the interfaces reads the wall clock directly.

Production code takes a :class:`Clock`; tests pass :class:`FakeClock` and move time by hand,
so expiry, rotation and TTL logic is tested without sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def timestamp(self) -> float:
        """The current time as POSIX seconds."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return datetime.now(UTC).timestamp()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def timestamp(self) -> float:
        return self.now().timestamp()

    def advance(self, delta: timedelta | float) -> None:
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when
