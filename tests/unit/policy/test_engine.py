"""Every rule of the blended decision, its obligations, and the cache's invalidation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tabard.policy import (
    DecisionRequest,
    DelegationMode,
    Effect,
    InvalidDecisionRequestError,
    Obligation,
    PolicyBundle,
    PolicyEngine,
    compile_bundle,
)
from tests.unit.policy.conftest import ASSISTANT, Facts, bundle, instance


def ask(engine: PolicyEngine, user: str | None = "alice", resource: str = "Tool::jira.search",
        *, action: str = "tools/call", agent: str = ASSISTANT, **kwargs: Any) -> Any:
    return engine.decide(DecisionRequest.build(agent=agent, user=user, action=action,
                                               resource=resource, **kwargs))


def test_hybrid_needs_both_sides_and_names_the_deciding_policies(engine: PolicyEngine) -> None:
    allowed = ask(engine, "alice", "Tool::jira.create_issue")
    assert allowed.effect is Effect.ALLOW and allowed.obligations == ()
    assert allowed.delegation == "hybrid" and allowed.policy_epoch == 1
    assert allowed.agent_policies == ("assistant-tools",)
    assert allowed.user_policies == ("engineers-jira-github",)
    denied = ask(engine, "alice", "Tool::scanner.run_scan")
    assert denied.effect is Effect.DENY and denied.agent_policies == ("assistant-tools",)
    assert "user side: no policy permits User alice" in " ".join(denied.reasons)
    forbidden = ask(engine, "bob", "Tool::deploy.release")
    assert forbidden.user_policies == ("deploy-needs-release-manager",)
    assert "forbidden by deploy-needs-release-manager" in " ".join(forbidden.reasons)
    assert ask(engine, "rita", "Tool::deploy.release").effect is Effect.ALLOW


def test_the_agent_side_can_refuse_what_the_user_may(engine: PolicyEngine,
                                                     facts: Facts) -> None:
    # billing-agent has no agent-side permit for tools: alice's own permission is not enough
    facts.agents["billing-agent"] = replace(facts.agents["billing-agent"],
                                            tools=frozenset({"jira.search"}))
    denied = ask(engine, "alice", agent=instance("billing-agent"))
    assert denied.effect is Effect.DENY and denied.user_policies == ("engineers-jira-github",)
    assert "agent side: no policy permits AgentInstance" in " ".join(denied.reasons)


def test_impersonation_is_the_user_alone(engine: PolicyEngine, facts: Facts) -> None:
    facts.agents["billing-agent"] = replace(facts.agents["billing-agent"],
                                            delegation=DelegationMode.IMPERSONATION)
    engine.facts_changed()
    decision = ask(engine, "alice", agent=instance("billing-agent"))
    assert decision.effect is Effect.ALLOW and decision.delegation == "impersonation"
    assert decision.agent_policies == () and "agent side not evaluated" in decision.reasons[-1]
    assert ask(engine, None, agent=instance("billing-agent")).effect is Effect.DENY


def test_agent_as_principal_alone_may_act_without_a_user(engine: PolicyEngine) -> None:
    nightly = instance("nightly")
    decision = ask(engine, None, agent=nightly)
    assert decision.effect is Effect.ALLOW and decision.agent_policies == ("background-agents",)
    assert decision.delegation == "agent_as_principal"
    assert ask(engine, None, "Tool::github.read_file", agent=nightly).effect is Effect.DENY
    no_user = ask(engine, None)  # the hybrid assistant
    assert no_user.effect is Effect.DENY and "needs a user" in no_user.reasons[0]


@pytest.mark.parametrize(("change", "reason"), [
    ({"state": "suspended"}, "agent 'assistant' is suspended"),
    ({"state": "registered"}, "agent 'assistant' is registered"),
    ({"state": "retiring"}, "agent 'assistant' is retiring"),
])
def test_lifecycle_state_forbids(engine: PolicyEngine, facts: Facts, change: dict[str, str],
                                 reason: str) -> None:
    facts.agents["assistant"] = replace(facts.agents["assistant"], **change)
    engine.facts_changed()
    decision = ask(engine)
    assert decision.effect is Effect.DENY and decision.reasons == (reason,)


def test_pending_recertification_keeps_old_grants(engine: PolicyEngine, facts: Facts) -> None:
    facts.agents["assistant"] = replace(facts.agents["assistant"],
                                        state="pending_recertification")
    engine.facts_changed()
    assert ask(engine).effect is Effect.ALLOW
    pending = ask(engine, "alice", "Tool::jira.delete")
    assert pending.effect is Effect.DENY
    assert pending.reasons == ("tool 'jira.delete' is pending recertification for agent "
                               "'assistant'",)


def test_unknown_agent_instance_or_user_fail_closed_and_are_not_cached(
        engine: PolicyEngine, facts: Facts) -> None:
    cases = [
        (dict(agent="spiffe://example.org/workload/x"), "is not an agent instance"),
        (dict(agent="spiffe://other.org/agent/assistant/instance/1"), "not of trust domain"),
        (dict(agent=instance("ghost")), "unknown agent instance"),
        (dict(user="mallory"), "unknown user 'mallory'"),
    ]
    for kwargs, reason in cases:
        decision = ask(engine, **{"user": "alice", **kwargs})
        assert decision.effect is Effect.DENY and reason in decision.reasons[0], decision
    # mallory joins: the very next decision sees her (no cached denial)
    facts.users["mallory"] = replace(facts.users["alice"], user_name="mallory")
    assert ask(engine, "mallory").effect is Effect.ALLOW
    facts.retired.add(ASSISTANT)
    engine.facts_changed()
    assert "is retired" in ask(engine).reasons[0]


def test_inactive_user_and_undeclared_tools(engine: PolicyEngine, facts: Facts) -> None:
    facts.users["alice"] = replace(facts.users["alice"], active=False)
    engine.facts_changed()
    assert ask(engine).reasons == ("user 'alice' is not active",)
    facts.agents["assistant"] = replace(facts.agents["assistant"],
                                        tools=frozenset({"jira.search"}))
    engine.facts_changed()
    undeclared = ask(engine, "bob", "Tool::scanner.run_scan")
    assert undeclared.reasons == ("tool 'scanner.run_scan' is not declared by agent "
                                  "'assistant'",)
    missing = ask(engine, "bob", "Tool::not.in.catalog")
    assert missing.reasons == ("Tool::not.in.catalog is not in the policy catalog",)


def test_every_hop_of_the_chain_must_grant_the_operation(engine: PolicyEngine) -> None:
    inside = ask(engine, scopes=["tools:jira.* tools:github.*", "tools:jira.search"])
    assert inside.effect is Effect.ALLOW
    assert "inside the scope of all 2 delegation hop(s)" in inside.reasons
    outside = ask(engine, "alice", "Tool::github.read_file",
                  scopes=["tools:*", "tools:jira.*"], actors=["user-app", "sub-agent"])
    assert outside.effect is Effect.DENY
    assert outside.reasons == ("tools:github.read_file lies outside the scope delegated at "
                               "hop 2 (sub-agent)",)
    assert ask(engine, scopes=[""]).effect is Effect.DENY  # an empty scope grants nothing


def test_obligations_redact_approval_and_read_only(engine: PolicyEngine,
                                                   facts: Facts) -> None:
    scan = ask(engine, "bob", "Tool::scanner.run_scan")
    assert scan.effect is Effect.ALLOW and scan.obligations == (Obligation.REDACT,)
    risky = ask(engine, "bob", "Tool::scanner.run_scan", context={"risk": 51})
    assert risky.obligations == (Obligation.REDACT, Obligation.REQUIRE_APPROVAL)
    assert "risk 51 exceeds 50 (policy security-scanner)" in risky.reasons[-1]
    assert ask(engine, "bob", "Tool::scanner.run_scan",
               context={"risk": 50}).obligations == (Obligation.REDACT,)
    # the agent flagged read-only: reads pass with the obligation, changes are refused
    facts.agents["assistant"] = replace(facts.agents["assistant"], read_only=True)
    engine.facts_changed()
    read = ask(engine)
    assert read.effect is Effect.ALLOW and read.obligations == (Obligation.READ_ONLY,)
    write = ask(engine, "alice", "Tool::jira.create_issue")
    assert write.effect is Effect.DENY and "read-only" in write.reasons[-1]


def test_policy_read_only_obligation_blocks_mutating_http_and_a2a(engine: PolicyEngine) -> None:
    get = ask(engine, action="GET", resource="HttpRoute::repos",
              context={"path": "/repos/tabard"}, scopes=["http:GET:/repos/*"])
    assert get.effect is Effect.ALLOW and get.obligations == (Obligation.READ_ONLY,)
    post = ask(engine, action="POST", resource="HttpRoute::repos",
               context={"path": "/repos/tabard"})
    assert post.effect is Effect.DENY and "read-only" in post.reasons[-1]
    assert ask(engine, action="tasks/get", resource="A2aAgent::billing-agent",
               scopes=["a2a:billing-agent"]).effect is Effect.ALLOW
    assert ask(engine, action="message/send",
               resource="A2aAgent::billing-agent").effect is Effect.DENY
    assert ask(engine, action="GET", resource="HttpRoute::repos", context={"path": "/x"},
               scopes=["http:GET:/repos/*"]).effect is Effect.DENY


def test_a2a_to_an_agent_with_inbound_blocked(engine: PolicyEngine, facts: Facts) -> None:
    facts.agents["billing-agent"] = replace(facts.agents["billing-agent"],
                                            inbound_blocked=True)
    engine.facts_changed()
    decision = ask(engine, action="tasks/get", resource="A2aAgent::billing-agent")
    assert decision.reasons == ("agent 'billing-agent' accepts no inbound calls",)


def test_tool_arguments_reach_policies(engine: PolicyEngine) -> None:
    assert ask(engine, context={"arguments": {"project": "OPS"}}).effect is Effect.ALLOW
    secret = ask(engine, context={"arguments": {"project": "SECRET", "limit": 5}})
    assert secret.effect is Effect.DENY and secret.user_policies == ("project-sec-only",)


def test_requests_are_checked(engine: PolicyEngine) -> None:
    for kwargs, text in [
        (dict(action="tools/delete"), "unknown action"),
        (dict(resource="Tool"), "TYPE::ID"),
        (dict(resource="Thing::x"), "resource type"),
        (dict(action="GET"), "applies to HttpRoute"),
        (dict(context={"risk": -1}), "risk"),
        (dict(context={"colour": 1}), "unknown context keys"),
        (dict(context={"path": "relative"}), "path must start"),
    ]:
        with pytest.raises(InvalidDecisionRequestError, match=text):
            ask(engine, **kwargs)


def test_cache_answers_repeats_and_never_outlives_a_change(engine: PolicyEngine,
                                                           facts: Facts) -> None:
    first = ask(engine)
    reads = facts.reads
    again = ask(engine)
    assert not first.cached and again.cached and facts.reads == reads
    assert replace(again, cached=False) == first
    # a move to another group: the very next decision sees it
    facts.users["alice"] = replace(facts.users["alice"], groups=frozenset({"security"}))
    engine.facts_changed()
    moved = ask(engine)
    assert moved.effect is Effect.DENY and not moved.cached
    assert ask(engine, "alice", "Tool::scanner.run_scan").effect is Effect.ALLOW
    # a new policy epoch: same
    cached = ask(engine, "alice", "Tool::scanner.run_scan")
    assert cached.cached
    files = {n: t for n, t in bundle().files if n != "people.cedar"}
    engine.load(compile_bundle(PolicyBundle.of(files)), 2)
    after = ask(engine, "alice", "Tool::scanner.run_scan")
    assert after.effect is Effect.DENY and after.policy_epoch == 2 and not after.cached


def test_a_change_during_a_decision_is_not_cached_under_the_new_epoch(
        engine: PolicyEngine, facts: Facts) -> None:
    class Racing(Facts):
        def user(self, user_name: str) -> Any:
            found = super().user(user_name)
            engine.facts_changed()  # the change lands while this decision is computed
            return found

    racing = Racing(facts.agents, facts.users)
    engine._users = racing  # type: ignore[assignment]
    ask(engine)
    engine._users = facts  # type: ignore[assignment]
    facts.users["alice"] = replace(facts.users["alice"], groups=frozenset())
    # the decision computed during the change was filed under the old epoch
    assert ask(engine).effect is Effect.DENY


def test_no_policies_means_deny(facts: Facts) -> None:
    engine = PolicyEngine(facts, facts)
    decision = ask(engine)
    assert decision.effect is Effect.DENY and decision.policy_epoch == 0
