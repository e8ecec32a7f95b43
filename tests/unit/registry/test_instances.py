"""Instance IDs (ULIDs), process reports, node IDs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tabard.registry import (
    InstanceQuery,
    InstanceReport,
    InvalidInstanceError,
    is_ulid,
    new_ulid,
    node_id_from_spiffe_id,
    node_spiffe_id,
    parse_selectors,
)
from tabard.spiffe import SpiffeId, TrustDomain

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SHA = "ab" * 32


def test_ulids_are_26_lowercase_crockford_chars_sorted_by_time() -> None:
    ids = [new_ulid(T0 + timedelta(milliseconds=i)) for i in range(50)]
    assert all(len(i) == 26 and is_ulid(i) for i in ids)
    assert ids == sorted(ids)
    assert len({new_ulid(T0) for _ in range(1000)}) == 1000
    assert not set("ilou").intersection("".join(ids))
    # the first 10 characters encode the milliseconds
    millis = int(T0.timestamp() * 1000)
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    decoded = 0
    for ch in ids[0][:10]:
        decoded = decoded * 32 + alphabet.index(ch)
    assert decoded == millis
    assert SpiffeId.parse(f"spiffe://example.org/agent/a/instance/{ids[0]}")


@pytest.mark.parametrize("value", ["", "01HX" * 6 + "AB", "8" + "0" * 25, "0" * 25,
                                   "0" * 25 + "u"])
def test_not_ulids(value: str) -> None:
    assert not is_ulid(value)


def report(**changes: object) -> InstanceReport:
    values: dict[str, object] = {
        "entry_id": "e", "pid": 10, "start_time": 12.5, "uid": 1000, "gid": 1000,
        "exe_path": "/usr/bin/python3", "exe_sha256": SHA,
        "selectors": parse_selectors(["unix:uid:1000"]), **changes}
    return InstanceReport(**values)  # type: ignore[arg-type]


def test_a_report_normalises_start_time_and_ignores_a_malformed_parent() -> None:
    r = report(start_time=12, parent_instance_id="not-a-ulid")
    assert r.start_time == 12.0 and isinstance(r.start_time, float)
    assert r.parent_instance_id is None
    parent = new_ulid(T0)
    assert report(parent_instance_id=parent).parent_instance_id == parent


@pytest.mark.parametrize("changes", [
    {"pid": 0}, {"pid": -1}, {"pid": True}, {"uid": -1}, {"gid": 2**32},
    {"start_time": -1.0}, {"start_time": float("nan")}, {"start_time": float("inf")},
    {"exe_path": "python3"}, {"exe_path": "/bin/\x00x"}, {"exe_sha256": SHA.upper()},
    {"exe_sha256": "ab"},
])
def test_impossible_reports_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInstanceError):
        report(**changes)


def test_instance_query_limits() -> None:
    assert InstanceQuery().limit == 1000
    for bad in (0, 10_001):
        with pytest.raises(InvalidInstanceError):
            InstanceQuery(limit=bad)


def test_node_ids() -> None:
    td = TrustDomain("example.org")
    node_id = "0123456789abcdef" * 2
    spiffe_id = node_spiffe_id(td, node_id)
    assert str(spiffe_id) == f"spiffe://example.org/node/{node_id}"
    assert node_id_from_spiffe_id(spiffe_id, td) == node_id
    for other in (f"spiffe://other.org/node/{node_id}", "spiffe://example.org/node/abc",
                  f"spiffe://example.org/node/{node_id}/x", f"spiffe://example.org/n/{node_id}",
                  "spiffe://example.org/web"):
        assert node_id_from_spiffe_id(SpiffeId.parse(other), td) is None
