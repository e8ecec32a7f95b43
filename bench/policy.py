"""Blended decision latency (ARCHITECTURE.md §8: ≤ 100 µs uncached, ≤ 5 µs cached).

Baseline, in the same run over the same compiled policies and entities: one bare
``cedarpy.is_authorized`` call with pre-parsed ``PolicySet`` and ``Entities`` handles (the
user side of the decision alone). Subjects:

* uncached — :meth:`PolicyEngine.decide` missing the decision cache (each request differs in
  its context), the (instance, user) entity set already built: facts lookups, every rule,
  one Cedar batch of both sides (hybrid mode), obligations;
* cached — the same request again, answered from the decision cache;
* cold — right after a facts change: the entity set is rebuilt too (reported, no goal).

Latencies are per-call p50 over alternating rounds, so load from elsewhere hits all alike.
The budgets are absolute; each figure's goal ratio is the budget divided by the baseline.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cedarpy

from bench.harness import Figure, percentile
from tabard.policy import DecisionRequest, PolicyEngine, compile_bundle, read_bundle
from tabard.policy.facts import AgentFacts, DelegationMode, StaticFacts, UserFacts

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "policy" / "policies"
AGENT = "spiffe://bench.example/agent/assistant/instance/01"
TOOLS = frozenset({"jira.create_issue", "jira.search", "github.create_pr", "github.read_file",
                   "scanner.run_scan", "deploy.release"})
UNCACHED_BUDGET_US, CACHED_BUDGET_US = 100.0, 5.0


def _samples(fn: Callable[[int], object], count: int) -> list[float]:
    out = []
    for i in range(count):
        start = time.perf_counter_ns()
        fn(i)
        out.append((time.perf_counter_ns() - start) / 1000)
    return out


def run(rounds: int = 7, per_round: int = 600) -> list[Figure]:
    facts = StaticFacts.of(
        [AgentFacts("assistant", "active", DelegationMode.HYBRID, TOOLS)],
        [UserFacts("alice", True, frozenset({"engineering"}))])
    compiled = compile_bundle(read_bundle(EXAMPLE))
    engine = PolicyEngine(facts, facts, trust_domain="bench.example",
                          cache_size=rounds * per_round * 2)
    engine.load(compiled, 1)

    entities = compiled.entities.with_added_json_str(json.dumps([
        {"uid": {"type": "Tabard::User", "id": "alice"}, "attrs": {"active": True},
         "parents": [{"type": "Tabard::Group", "id": "engineering"}]}]))
    context = {"risk": 0, "delegation": "hybrid", "chain_depth": 0, "user": "alice",
               "agent": "assistant", "agent_tier": "dev", "instance": AGENT, "path": "",
               "arguments": []}
    bare_request = {"principal": {"type": "Tabard::User", "id": "alice"},
                    "action": {"type": "Tabard::Action", "id": "tools/call"},
                    "resource": {"type": "Tabard::Tool", "id": "jira.create_issue"},
                    "context": context}
    assert cedarpy.is_authorized(bare_request, compiled.policy_set, entities).allowed

    def request(risk: int) -> DecisionRequest:
        return DecisionRequest.build(agent=AGENT, user="alice", action="tools/call",
                                     resource="Tool::jira.create_issue",
                                     context={"risk": risk})

    fixed = request(0)
    assert engine.decide(fixed).allowed and engine.decide(fixed).cached
    distinct = iter(range(1, 10**9))
    bare: list[float] = []
    uncached: list[float] = []
    cached: list[float] = []
    cold: list[float] = []
    batch: list[float] = []
    both = [{**bare_request, "principal": {"type": "Tabard::AgentInstance", "id": AGENT}},
            bare_request]
    for _ in range(rounds):
        bare += _samples(lambda _: cedarpy.is_authorized(bare_request, compiled.policy_set,
                                                         entities), per_round)
        batch += _samples(lambda _: cedarpy.is_authorized_batch(both, compiled.policy_set,
                                                                entities), per_round)
        fresh = [request(next(distinct)) for _ in range(per_round)]
        uncached += _samples(lambda i, todo=fresh: engine.decide(todo[i]), per_round)
        cached += _samples(lambda _: engine.decide(fixed), per_round)

        def after_change(_: int) -> None:
            engine.facts_changed()
            engine.decide(fixed)

        cold += _samples(after_change, per_round // 4)
        engine.decide(fixed)

    p50 = statistics.median
    base = p50(bare)
    notes = [f"p99: bare {percentile(bare, 99):.1f} µs, uncached {percentile(uncached, 99):.1f}"
             f" µs, cached {percentile(cached, 99):.2f} µs",
             f"one cedarpy is_authorized_batch of both sides alone: p50 {p50(batch):.1f} µs "
             "(the floor of an uncached hybrid decision)"]
    return [
        Figure("blended decision, uncached (p50)", p50(uncached), "µs",
               "bare cedarpy is_authorized, pre-parsed", base, f"≤ {UNCACHED_BUDGET_US:.0f} µs",
               higher_is_better=False, goal_ratio=UNCACHED_BUDGET_US / base, notes=notes),
        Figure("blended decision, cached (p50)", p50(cached), "µs",
               "bare cedarpy is_authorized, pre-parsed", base, f"≤ {CACHED_BUDGET_US:.0f} µs",
               higher_is_better=False, goal_ratio=CACHED_BUDGET_US / base),
        Figure("blended decision, cold after a facts change (p50)", p50(cold), "µs",
               "bare cedarpy is_authorized, pre-parsed", base, "reported",
               higher_is_better=False),
    ]
