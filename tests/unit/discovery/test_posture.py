"""Posture flags at their boundaries, judged at read time with a FakeClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tabard.clock import FakeClock
from tabard.discovery import (
    LONG_LIVED_AFTER,
    UNUSED_AFTER,
    PostureFlag,
    UnknownPostureFlagError,
    assess,
    parse_flags,
)
from tabard.registry import NhiKind, NhiRecord, NhiSpec

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def record(*, owner: str | None = "alice", created: datetime | None = T0,
           last_used: datetime | None = None, expires: datetime | None = None,
           first_seen: datetime = T0) -> NhiRecord:
    spec = NhiSpec(kind=NhiKind.API_KEY, name="k", source="test", external_id="k", owner=owner,
                   created_at=created, last_used_at=last_used, expires_at=expires)
    return NhiRecord(id="01" + "0" * 24, spec=spec, first_seen_at=first_seen, updated_at=T0)


def flags(r: NhiRecord, clock: FakeClock) -> set[PostureFlag]:
    return set(assess(r, clock.now()))


def test_a_healthy_record_has_no_flags() -> None:
    r = record(expires=T0 + timedelta(days=30), last_used=T0)
    assert assess(r, T0 + timedelta(days=1)) == ()


def test_no_owner() -> None:
    assert PostureFlag.NO_OWNER in flags(record(owner=None), FakeClock(T0))
    assert PostureFlag.NO_OWNER not in flags(record(owner="bob"), FakeClock(T0))


def test_expired_from_the_instant_of_expiry() -> None:
    expires = T0 + timedelta(days=10)
    r = record(expires=expires, last_used=T0)
    clock = FakeClock(expires - SECOND)
    assert PostureFlag.EXPIRED not in flags(r, clock)
    clock.advance(SECOND)
    assert PostureFlag.EXPIRED in flags(r, clock)
    clock.advance(timedelta(days=365))
    assert PostureFlag.EXPIRED in flags(r, clock)


def test_long_lived_is_over_90_days_or_no_expiry() -> None:
    clock = FakeClock(T0)
    assert timedelta(days=90) == LONG_LIVED_AFTER
    assert PostureFlag.LONG_LIVED not in flags(record(expires=T0 + LONG_LIVED_AFTER), clock)
    assert PostureFlag.LONG_LIVED in flags(record(expires=T0 + LONG_LIVED_AFTER + SECOND), clock)
    assert PostureFlag.LONG_LIVED in flags(record(expires=None), clock)


def test_long_lived_without_creation_time_counts_from_first_import() -> None:
    clock = FakeClock(T0)
    seen = T0 - timedelta(days=5)
    r = record(created=None, first_seen=seen, expires=seen + LONG_LIVED_AFTER)
    assert PostureFlag.LONG_LIVED not in flags(r, clock)
    r = record(created=None, first_seen=seen, expires=seen + LONG_LIVED_AFTER + SECOND)
    assert PostureFlag.LONG_LIVED in flags(r, clock)


def test_unused_after_30_days_since_last_use() -> None:
    assert timedelta(days=30) == UNUSED_AFTER
    last_used = T0 + timedelta(days=3)
    r = record(last_used=last_used, expires=T0 + timedelta(days=60))
    clock = FakeClock(last_used + UNUSED_AFTER)
    assert PostureFlag.UNUSED_30D not in flags(r, clock)
    clock.advance(SECOND)
    assert PostureFlag.UNUSED_30D in flags(r, clock)


def test_never_used_counts_from_creation_then_from_first_import() -> None:
    clock = FakeClock(T0 + UNUSED_AFTER)
    never_used = record(last_used=None, expires=T0 + timedelta(days=60))
    assert PostureFlag.UNUSED_30D not in flags(never_used, clock)
    clock.advance(SECOND)
    assert PostureFlag.UNUSED_30D in flags(never_used, clock)
    unknown_age = record(created=None, first_seen=T0 + timedelta(days=1), last_used=None)
    assert PostureFlag.UNUSED_30D not in flags(unknown_age, clock)
    clock.advance(timedelta(days=1))
    assert PostureFlag.UNUSED_30D in flags(unknown_age, clock)


def test_flags_come_in_a_stable_order() -> None:
    r = record(owner=None, created=T0 - timedelta(days=400), expires=T0 - timedelta(days=1))
    assert assess(r, T0) == (PostureFlag.NO_OWNER, PostureFlag.EXPIRED,
                             PostureFlag.LONG_LIVED, PostureFlag.UNUSED_30D)


def test_parse_flags() -> None:
    assert parse_flags(["no_owner", "expired", "no_owner"]) == {PostureFlag.NO_OWNER,
                                                                PostureFlag.EXPIRED}
    with pytest.raises(UnknownPostureFlagError, match="expected one of no_owner"):
        parse_flags(["stale"])
