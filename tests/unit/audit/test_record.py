"""Record encoding: the fast canonical form is RFC 8785 (held to the ``rfc8785`` package),
the entry header, subjects for trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import rfc8785

from tabard.audit import (
    AuditEvent,
    AuditKind,
    Decision,
    InvalidAuditEventError,
    Outcome,
    What,
    Who,
    canonical_json,
)
from tabard.audit.record import format_time, prepare

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)

EVENTS = [
    AuditEvent(kind="admin_action", actor="ops", what=What(operation="POST /api/v1/agents")),
    AuditEvent(
        kind=AuditKind.GATEWAY_DECISION, actor="spiffe://td.org/agent/refund/instance/01J",
        who=Who.of_spiffe_id("spiffe://td.org/agent/refund/instance/01J", user="älice \"q\"\n",
                             owner="bob", chain=("alice", "spiffe://td.org/agent/orch/instance/9")),
        what=What(operation="tools/call", target="refund\u2028\x7f\x01"),
        decision=Decision(effect="deny", policies=("p1", "p2"), reason="tab\there"),
        outcome=Outcome.DENIED,
        details={"z": [1, None, True, {"b": "x", "a": -(2**53 - 1)}], "A": "é", "m": {}}),
    # flat details (the fast path): every value kind it writes itself
    AuditEvent(kind="issuance", actor="node", what=What(operation="svid.x509", target=""),
               who=Who(node="n\u00e9", chain=("u",)),
               decision=Decision(effect="allow", reason=""),
               details={"n": 5, "neg": -(2**53 - 1), "s": "x\"\u00e9\\", "t": True,
                        "f": False, "z": None, "B": "", "a_b": 0}),
    # an unhashable who (a list for the chain) skips the cache of who parts
    AuditEvent(kind="approval", actor="ops", what=What(operation="approve"),
               who=Who(user="bob", chain=["spiffe://td.org/agent/a", "bob"])),  # type: ignore[arg-type]
    AuditEvent(kind="token_grant", actor="client", what=What(operation="token-exchange"),
               details={"ratio": 0.1, "big": 10**20 // 10**5, "ключ": "v", "\U0001f600": 1,
                        "\uffff": 2}),
]


@pytest.mark.parametrize("event", EVENTS)
def test_the_body_is_the_rfc8785_form(event: AuditEvent) -> None:
    assert prepare(event, AT).body == rfc8785.dumps(event.body(AT))


def test_values_json_cannot_carry_exactly_are_refused() -> None:
    for details in ({"x": float("nan")}, {"x": 2**60}, {"x": object()}):
        with pytest.raises(InvalidAuditEventError):
            prepare(AuditEvent(kind="k", actor="a", what=What(operation="o"), details=details), AT)
    with pytest.raises(InvalidAuditEventError):
        prepare(AuditEvent(kind="k", actor="a", what=What(operation="\ud800")), AT)
    with pytest.raises(InvalidAuditEventError):
        prepare(AuditEvent(kind="k", actor="", what=What(operation="o")), AT)
    for bad in (AuditEvent(kind="k", actor="a", what=What(operation="o"), who=Who(user=7)),  # type: ignore[arg-type]
                AuditEvent(kind="k", actor="a", what=What(operation="o"),
                           decision=Decision(effect="allow", policies=(1,))),  # type: ignore[arg-type]
                AuditEvent(kind="k", actor="a", what=What(operation="o"), details={1: "x"})):  # type: ignore[dict-item]
        with pytest.raises(InvalidAuditEventError):
            prepare(bad, AT)
    assert canonical_json({"b": 1, "a": [True, None]}) == b'{"a":[true,null],"b":1}'


def test_events_of_one_time_and_of_equal_who_share_work_but_not_mistakes() -> None:
    event = EVENTS[1]
    other = AuditEvent(kind="k", actor="a", what=What(operation="o"),
                       who=Who.of_spiffe_id("spiffe://td.org/agent/refund/instance/01J",
                                            user="\u00e4lice \"q\"\n", owner="bob",
                                            chain=("alice",
                                                   "spiffe://td.org/agent/orch/instance/9")))
    later = AT.replace(microsecond=7)
    for e, at in ((event, AT), (other, AT), (event, later), (other, AT), (event, later)):
        p = prepare(e, at)
        assert p.body == rfc8785.dumps(e.body(at))
        assert p.subjects == tuple(sorted(e.who.subjects()))


def test_times_are_utc_with_microseconds() -> None:
    assert format_time(AT) == "2026-03-01T12:00:00.123456Z"
    assert format_time(datetime(2026, 3, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == \
        "2026-03-01T12:00:00.000000Z"


def test_times_within_and_across_a_second_share_its_text_exactly() -> None:
    event = EVENTS[2]
    other_zone = datetime(2026, 3, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    for at in (AT, AT.replace(microsecond=9), AT + timedelta(seconds=1), AT.replace(microsecond=0),
               other_zone, AT.replace(microsecond=999999), AT + timedelta(days=1)):
        assert prepare(event, at).body == rfc8785.dumps(event.body(at))
    what = AuditEvent(kind="k", actor="a", what=What(operation="o", target=["x"]))  # type: ignore[arg-type]
    with pytest.raises(InvalidAuditEventError):
        prepare(what, AT)


def test_subjects_cover_the_delegation_chain() -> None:
    who = Who.of_spiffe_id("spiffe://td.org/agent/tool/instance/7", user="alice",
                           chain=("alice", "spiffe://td.org/agent/orch/instance/9",
                                  "spiffe://td.org/agent/tool/instance/7"))
    assert who.subjects() == {"agent:tool", "instance:7", "agent:orch", "instance:9",
                              "user:alice"}
    assert Who.of_spiffe_id("spiffe://td.org/node/abc").subjects() == set()
