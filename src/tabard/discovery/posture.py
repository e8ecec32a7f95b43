"""Posture of inventory records: the flags an operator acts on, judged at read time.

Nothing here is stored: the same record becomes ``expired`` or ``unused_30d`` as time passes,
so every read takes ``now`` from the injected clock.

* ``no_owner`` — nobody is accountable for the identity;
* ``expired`` — its expiry is at or before now;
* ``long_lived`` — it never expires, or its lifetime (expiry minus creation) is over 90 days;
* ``unused_30d`` — last used more than 30 days ago, or never used and created more than
  30 days ago.

When the source does not say when an identity was created, the time tabard first imported it
stands in. The identity existed by then, so the lifetime and the idle time measured from it
are lower bounds: a flag raised on them is never a false alarm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tabard.discovery.errors import UnknownPostureFlagError
from tabard.registry import NhiRecord

__all__ = ["LONG_LIVED_AFTER", "UNUSED_AFTER", "AssessedNhi", "PostureFlag", "assess",
           "parse_flags"]

LONG_LIVED_AFTER = timedelta(days=90)
UNUSED_AFTER = timedelta(days=30)


class PostureFlag(StrEnum):
    NO_OWNER = "no_owner"
    EXPIRED = "expired"
    LONG_LIVED = "long_lived"
    UNUSED_30D = "unused_30d"


def parse_flags(values: Iterable[str]) -> frozenset[PostureFlag]:
    flags = set()
    for value in values:
        try:
            flags.add(PostureFlag(value))
        except ValueError:
            choices = ", ".join(f.value for f in PostureFlag)
            raise UnknownPostureFlagError(
                f"unknown posture flag {value!r}; expected one of {choices}") from None
    return frozenset(flags)


def assess(record: NhiRecord, now: datetime) -> tuple[PostureFlag, ...]:
    """The flags of ``record`` at ``now``, in :class:`PostureFlag` order."""
    spec = record.spec
    start = spec.created_at or record.first_seen_at
    flags = []
    if spec.owner is None:
        flags.append(PostureFlag.NO_OWNER)
    if spec.expires_at is not None and spec.expires_at <= now:
        flags.append(PostureFlag.EXPIRED)
    if spec.expires_at is None or spec.expires_at - start > LONG_LIVED_AFTER:
        flags.append(PostureFlag.LONG_LIVED)
    idle_since = spec.last_used_at or start
    if now - idle_since > UNUSED_AFTER:
        flags.append(PostureFlag.UNUSED_30D)
    return tuple(flags)


@dataclass(frozen=True, slots=True)
class AssessedNhi:
    """A record with its posture at the time it was read."""

    record: NhiRecord
    flags: tuple[PostureFlag, ...]
