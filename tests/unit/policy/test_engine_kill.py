"""The decision honours the kill switch: a suspension denies with its reason, a narrowing
adds read-only, blocks tool categories and lowers the approval threshold; a kill-state
change (facts epoch bump) is never answered from the cache."""

from __future__ import annotations

from dataclasses import dataclass

from tabard.policy import (
    Decision,
    DecisionRequest,
    Effect,
    KillFacts,
    Obligation,
    PolicyEngine,
    compile_bundle,
)
from tests.unit.policy.conftest import ASSISTANT, TD, Facts, bundle


@dataclass
class Kill:
    facts: KillFacts | None = None
    asked: tuple[str, str, str | None, str | None] | None = None

    def restriction(self, *, agent: str, instance: str, user: str | None,
                    node: str | None) -> KillFacts | None:
        self.asked = (agent, instance, user, node)
        return self.facts


def ask(engine: PolicyEngine, resource: str = "Tool::jira.search", risk: int = 0,
        user: str = "alice") -> Decision:
    return engine.decide(DecisionRequest.build(agent=ASSISTANT, user=user, action="tools/call",
                                               resource=resource, context={"risk": risk}))


def test_kill_state_decides_and_every_change_passes_the_cache(facts: Facts) -> None:
    kill = Kill()
    engine = PolicyEngine(facts, facts, trust_domain=TD, kill=kill)
    engine.load(compile_bundle(bundle()), 1)
    first = ask(engine)
    assert first.effect is Effect.ALLOW
    assert kill.asked == ("assistant", ASSISTANT, "alice", None)
    assert ask(engine).cached is True

    kill.facts = KillFacts(suspended="kill switch: agent:assistant is suspended (incident)")
    engine.facts_changed()
    denied = ask(engine)
    assert denied.effect is Effect.DENY
    assert denied.reasons == ("kill switch: agent:assistant is suspended "
                                          "(incident)",)

    kill.facts = KillFacts(read_only=True, blocked_categories=frozenset({"github"}),
                           approval_above=10)
    engine.facts_changed()
    read = ask(engine, risk=11)
    assert read.effect is Effect.ALLOW
    assert read.obligations == (Obligation.READ_ONLY, Obligation.REQUIRE_APPROVAL)
    assert "risk 11 exceeds 10 (kill switch)" in read.reasons[-1]
    assert ask(engine, risk=5).obligations == (Obligation.READ_ONLY,)
    write = ask(engine, "Tool::jira.create_issue")
    assert write.effect is Effect.DENY and "read-only" in write.reasons[-1]
    blocked = ask(engine, "Tool::github.read_file")
    assert blocked.effect is Effect.DENY
    assert "tool category 'github' is blocked" in blocked.reasons[0]

    kill.facts = None
    engine.facts_changed()
    assert ask(engine, "Tool::jira.create_issue").effect is Effect.ALLOW
