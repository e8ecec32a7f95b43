"""Agent registration, states, movers with recertification (four eyes), transfer and
attestation — the use cases of AgentService over a real database and a fake directory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tabard.registry import (
    AgentChangedError,
    AgentExistsError,
    AgentPatch,
    AgentState,
    ChangeKind,
    ChangeStatus,
    FourEyesError,
    IllegalTransitionError,
    InvalidAgentError,
    InvalidEntryError,
    InvalidOwnerError,
    InvalidSelectorError,
    NodeRecord,
    NoPendingChangeError,
    NotAnApproverError,
    NotTheOwnerError,
    PolicyBindingRequiredError,
    SanitizationHook,
    Tier,
    agent_checksum,
    node_spiffe_id,
    parse_selectors,
)
from tabard.registry.lifecycle import TRANSITIONS, check_transition, same_person
from tests.fakes.agents import T0, TD, AgentWorld, spec

ADMIN = "admin:ops"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AgentWorld]:
    w = AgentWorld(f"sqlite:///{tmp_path / 'tabard.db'}")
    try:
        yield w
    finally:
        w.close()


def active(world: AgentWorld, name: str = "trading", **changes: object) -> None:
    world.agents.register(spec(name, **changes), actor=ADMIN, activate=True)


def test_register_stores_the_definition_and_its_instance_template_entry(
        world: AgentWorld) -> None:
    agent = world.agents.register(
        spec(system_prompt_digest="AA" * 32, config={"temperature": 0.2},
             sanitization_hooks=[SanitizationHook.parse("wipe")], delegation="impersonation"),
        actor=ADMIN, reason="new desk")
    assert agent.state is AgentState.REGISTERED and agent.version == 2
    assert agent.owner == "carol" and agent.tier is Tier.DEV
    assert agent.tools == ("orders.place", "quotes.read")
    assert agent.system_prompt_digest == "sha256:" + "aa" * 32
    assert agent.checksum == agent_checksum("sha256:" + "aa" * 32, agent.tools,
                                            {"temperature": 0.2})
    assert agent.policy_binding == "trading-dev" and agent.delegation.value == "impersonation"
    assert agent.attestation_due_at == T0 + world.policy.attestation_interval  # type: ignore[operator]
    entry = world.entries.get(agent.entry_id or "")
    assert entry.spiffe_id.text == f"spiffe://{TD.name}/agent/trading/instance/{{instance}}"
    assert entry.parent_id == world.node.spiffe_id  # the only node is the default
    assert [str(s) for s in entry.selectors] == ["unix:uid:1000"]
    events = world.agents.events("trading")
    assert [(e.seq, e.kind, e.actor) for e in events] == [
        (1, "registered", ADMIN), (2, "entry_created", ADMIN)]
    assert events[0].to_state is AgentState.REGISTERED and events[0].reason == "new desk"
    assert events[0].details["checksum"] == agent.checksum


@pytest.mark.parametrize(("owner", "message"), [
    ("nobody", "not a user of the directory"),
    ("tabard-approvers", "not a user of the directory"),  # a group is not a user
    ("team-inbox", "not a person"),
    ("", "owner must be"),
])
def test_owners_must_be_known_active_people(world: AgentWorld, owner: str,
                                            message: str) -> None:
    with pytest.raises(InvalidOwnerError, match=message):
        world.agents.register(spec(owner=owner), actor=ADMIN)
    world.directory.set_active("carol", False)
    with pytest.raises(InvalidOwnerError, match="not active"):
        world.agents.register(spec(), actor=ADMIN)
    assert world.agents.list() == [] and world.entries.list() == []


def test_registration_refusals_store_nothing(world: AgentWorld) -> None:
    cases = [
        (spec(name="Bad_Name"), InvalidAgentError),
        (spec(tools=[]), InvalidAgentError),
        (spec(tier="prod"), PolicyBindingRequiredError),
        (spec(tier="qa"), InvalidAgentError),
        (spec(image_digest="latest"), InvalidAgentError),
        (spec(selectors=["nocolon"]), InvalidSelectorError),
        (spec(selectors=[]), InvalidEntryError),
        (spec(sanitization_hooks=[SanitizationHook.parse("not-installed")]), InvalidAgentError),
        (spec(delegation="sometimes"), InvalidAgentError),
        (spec(policy_bindings={"dev": "has space"}), InvalidAgentError),
    ]
    for bad, error in cases:
        with pytest.raises(error):
            world.agents.register(bad, actor=ADMIN)
    assert world.agents.list() == [] and world.entries.list() == []


def test_names_are_never_reused(world: AgentWorld) -> None:
    world.agents.register(spec(), actor=ADMIN)
    with pytest.raises(AgentExistsError):
        world.agents.register(spec(selectors=["unix:uid:2000"]), actor=ADMIN)
    assert len(world.entries.list()) == 1


def test_parent_is_required_when_there_is_not_exactly_one_node(world: AgentWorld) -> None:
    other = uuid.uuid4().hex
    world.node_store.add(NodeRecord(id=other, spiffe_id=node_spiffe_id(TD, other),
                                    attestor="join_token",
                                    selectors=parse_selectors(["join_token:y"]),
                                    attested_at=T0))
    with pytest.raises(InvalidAgentError, match="parent_id is required: there are 2"):
        world.agents.register(spec(), actor=ADMIN)
    agent = world.agents.register(spec(parent_id=str(node_spiffe_id(TD, other))), actor=ADMIN)
    assert str(world.entries.get(agent.entry_id or "").parent_id).endswith(other)


def test_state_commands_and_illegal_transitions(world: AgentWorld) -> None:
    world.agents.register(spec(), actor=ADMIN)
    with pytest.raises(IllegalTransitionError, match="cannot suspend agent 'trading': it is "
                                                     "registered"):
        world.agents.suspend("trading", actor=ADMIN)
    with pytest.raises(IllegalTransitionError, match="resume applies to a suspended agent"):
        world.agents.resume("trading", actor=ADMIN)
    assert world.agents.activate("trading", actor=ADMIN).state is AgentState.ACTIVE
    with pytest.raises(IllegalTransitionError, match="activate applies to a registered agent"):
        world.agents.activate("trading", actor=ADMIN)
    world.clock.advance(60)
    suspended = world.agents.suspend("trading", actor=ADMIN, reason="incident 42")
    assert suspended.state is AgentState.SUSPENDED
    assert suspended.state_changed_at == T0 + timedelta(seconds=60)
    assert world.agents.resume("trading", actor=ADMIN).state is AgentState.ACTIVE
    transitions = [(e.kind, e.from_state, e.to_state, e.reason)
                   for e in world.agents.events("trading") if e.to_state]
    assert transitions[1:] == [
        ("activated", AgentState.REGISTERED, AgentState.ACTIVE, ""),
        ("suspended", AgentState.ACTIVE, AgentState.SUSPENDED, "incident 42"),
        ("resumed", AgentState.SUSPENDED, AgentState.ACTIVE, ""),
    ]


def test_the_transition_table_is_the_one_of_the_architecture() -> None:
    S = AgentState
    for state in S:
        if state not in (S.RETIRING, S.RETIRED):
            assert S.RETIRING in TRANSITIONS[state]  # any -> retiring
    assert TRANSITIONS[S.RETIRING] == {S.RETIRED} and not TRANSITIONS[S.RETIRED]
    assert S.ACTIVE in TRANSITIONS[S.REGISTERED] and S.SUSPENDED not in TRANSITIONS[S.REGISTERED]
    with pytest.raises(IllegalTransitionError):
        check_transition("x", S.RETIRED, S.ACTIVE, "resume")


def test_adding_a_tool_waits_for_an_approver_other_than_the_requester(
        world: AgentWorld) -> None:
    active(world)
    before = world.agents.get("trading")
    result = world.agents.update("trading", AgentPatch(add_tools=["orders.cancel"]),
                                 actor=ADMIN, requested_by="alice", reason="cancel orders")
    assert [c.kind for c in result.pending] == [ChangeKind.TOOL_ADD]
    agent = result.agent
    assert agent.state is AgentState.PENDING_RECERTIFICATION
    assert agent.tools == before.tools and agent.checksum == before.checksum  # old grants
    report = world.agents.report("trading")
    assert report.declared_tools == ("orders.cancel", "orders.place", "quotes.read")
    assert [c.payload for c in report.pending_changes] == [{"tool": "orders.cancel"}]

    with pytest.raises(FourEyesError, match="'alice' requested change"):
        world.agents.recertify("trading", approver="alice", actor=ADMIN)
    with pytest.raises(NotAnApproverError):
        world.agents.recertify("trading", approver="carol", actor=ADMIN)
    with pytest.raises(NotAnApproverError):
        world.agents.recertify("trading", approver="nobody", actor=ADMIN)
    world.directory.set_active("bob", False)
    with pytest.raises(NotAnApproverError):
        world.agents.recertify("trading", approver="bob", actor=ADMIN)
    world.directory.set_active("bob", True)
    assert world.agents.get("trading").tools == before.tools  # nothing applied

    decided = world.agents.recertify("trading", approver="bob", actor=ADMIN, reason="ok")
    assert [(c.status, c.decided_by) for c in decided] == [(ChangeStatus.APPROVED, "bob")]
    agent = world.agents.get("trading")
    assert agent.state is AgentState.ACTIVE
    assert agent.tools == ("orders.cancel", "orders.place", "quotes.read")
    assert agent.checksum == agent_checksum(None, agent.tools, None) != before.checksum
    kinds = [e.kind for e in world.agents.events("trading")]
    assert kinds[-4:] == ["change_requested", "pending_recertification", "recertified",
                          "recertification_complete"]
    with pytest.raises(NoPendingChangeError):
        world.agents.recertify("trading", approver="bob", actor=ADMIN)


def test_the_requester_defaults_to_the_admin_named_after_the_approver(
        world: AgentWorld) -> None:
    active(world)
    world.agents.update("trading", AgentPatch(add_tools=["x"]), actor="admin:Alice")
    assert same_person("admin:Alice", "alice") and not same_person("admin:bob", "alice")
    with pytest.raises(FourEyesError):
        world.agents.recertify("trading", approver="alice", actor="admin:Alice")
    world.agents.recertify("trading", approver="bob", actor="admin:Alice")


def test_promotion_needs_a_binding_for_the_new_tier(world: AgentWorld) -> None:
    active(world)
    with pytest.raises(PolicyBindingRequiredError, match="no policy binding for tier prod"):
        world.agents.promote("trading", "prod", actor=ADMIN)
    with pytest.raises(InvalidAgentError, match="not above"):
        world.agents.promote("trading", "dev", actor=ADMIN)
    result = world.agents.promote("trading", "prod", actor=ADMIN, requested_by="carol",
                                  policy_binding="trading-prod")
    assert result.agent.tier is Tier.DEV and result.agent.policy_bindings == {
        "dev": "trading-dev", "prod": "trading-prod"}
    assert [c.payload for c in result.pending] == [{"tier": "prod"}]
    world.agents.recertify("trading", approver="alice", actor=ADMIN)
    agent = world.agents.get("trading")
    assert agent.tier is Tier.PROD and agent.policy_binding == "trading-prod"
    # lowering the tier narrows: at once, no recertification
    lowered = world.agents.update("trading", AgentPatch(tier="dev"), actor=ADMIN)
    assert lowered.agent.tier is Tier.DEV and not lowered.pending
    with pytest.raises(PolicyBindingRequiredError, match="cannot be removed"):
        world.agents.update("trading", AgentPatch(policy_bindings={"dev": ""}), actor=ADMIN)


def test_model_and_checksum_changes_are_pending_and_supersede_each_other(
        world: AgentWorld) -> None:
    active(world)
    first = world.agents.update("trading", AgentPatch(model_version="4.1", config={"t": 1}),
                                actor=ADMIN, requested_by="carol")
    kinds = sorted(c.kind.value for c in first.pending)
    assert kinds == ["checksum_change", "model_change"]
    second = world.agents.update("trading", AgentPatch(model_version="4.2"), actor=ADMIN,
                                 requested_by="carol")
    changes = world.agents.changes("trading")
    statuses = {(c.kind, c.payload.get("model", {}).get("version"), c.status) for c in changes}
    assert (ChangeKind.MODEL_CHANGE, "4.1", ChangeStatus.SUPERSEDED) in statuses
    assert (ChangeKind.MODEL_CHANGE, "4.2", ChangeStatus.PENDING) in statuses
    model_change = second.pending[0]
    world.agents.recertify("trading", approver="alice", actor=ADMIN, change_id=model_change.id)
    agent = world.agents.get("trading")
    assert agent.model.version == "4.2" and agent.config is None  # config still pending
    assert agent.state is AgentState.PENDING_RECERTIFICATION
    world.agents.recertify("trading", approver="alice", actor=ADMIN)
    agent = world.agents.get("trading")
    assert agent.config == {"t": 1} and agent.state is AgentState.ACTIVE
    assert agent.checksum == agent_checksum(None, agent.tools, {"t": 1})


def test_rejection_and_withdrawal_of_pending_changes(world: AgentWorld) -> None:
    active(world)
    world.agents.update("trading", AgentPatch(add_tools=["a", "b"]), actor=ADMIN)
    pending = {c.payload["tool"]: c for c in world.agents.changes("trading", pending_only=True)}
    assert sorted(pending) == ["a", "b"]
    world.agents.recertify("trading", approver="alice", actor=ADMIN, change_id=pending["a"].id,
                           reject=True)
    assert world.agents.get("trading").state is AgentState.PENDING_RECERTIFICATION
    withdrawn = world.agents.update("trading", AgentPatch(remove_tools=["b"]), actor=ADMIN)
    assert withdrawn.agent.state is AgentState.ACTIVE
    assert {c.status for c in world.agents.changes("trading")} == {ChangeStatus.REJECTED,
                                                                   ChangeStatus.CANCELLED}
    assert "a" not in world.agents.get("trading").tools
    world.agents.update("trading", AgentPatch(add_tools=["c"]), actor=ADMIN)
    with pytest.raises(InvalidAgentError, match="already pending"):
        world.agents.update("trading", AgentPatch(add_tools=["c"]), actor=ADMIN)


def test_narrowing_applies_at_once_and_registered_agents_are_drafts(world: AgentWorld) -> None:
    world.agents.register(spec(), actor=ADMIN)
    draft = world.agents.update("trading", AgentPatch(add_tools=["x"], model_version="5",
                                                      config={"a": 1}), actor=ADMIN)
    assert not draft.pending and "x" in draft.agent.tools and draft.agent.model.version == "5"
    assert draft.agent.checksum == agent_checksum(None, draft.agent.tools, {"a": 1})
    world.agents.activate("trading", actor=ADMIN)
    narrowed = world.agents.update("trading", AgentPatch(remove_tools=["x"], purpose="Quotes",
                                                         hosting="vm-7"), actor=ADMIN)
    assert narrowed.agent.state is AgentState.ACTIVE and "x" not in narrowed.agent.tools
    assert narrowed.agent.purpose == "Quotes"
    with pytest.raises(InvalidAgentError, match="not tools"):
        world.agents.update("trading", AgentPatch(remove_tools=["nope"]), actor=ADMIN)
    with pytest.raises(InvalidAgentError, match="nothing to change"):
        world.agents.update("trading", AgentPatch(), actor=ADMIN)
    with pytest.raises(InvalidAgentError, match="at least one tool"):
        world.agents.update("trading", AgentPatch(remove_tools=["orders.place",
                                                                "quotes.read"]), actor=ADMIN)


def test_selectors_change_the_entry(world: AgentWorld) -> None:
    active(world)
    agent = world.agents.get("trading")
    world.agents.update("trading", AgentPatch(selectors=["unix:uid:2000"]), actor=ADMIN)
    entry = world.entries.get(agent.entry_id or "")
    assert [str(s) for s in entry.selectors] == ["unix:uid:2000"]
    world.entries.delete(entry.id)
    recreated = world.agents.update("trading", AgentPatch(selectors=["unix:uid:3000"]),
                                    actor=ADMIN).agent
    assert recreated.entry_id not in (None, entry.id)


def test_suspended_agents_collect_pending_changes_and_resume_into_recertification(
        world: AgentWorld) -> None:
    active(world)
    world.agents.suspend("trading", actor=ADMIN)
    result = world.agents.update("trading", AgentPatch(add_tools=["x"]), actor=ADMIN)
    assert result.agent.state is AgentState.SUSPENDED and result.pending
    assert world.agents.resume("trading", actor=ADMIN).state is (
        AgentState.PENDING_RECERTIFICATION)
    assert world.agents.suspend("trading", actor=ADMIN).state is AgentState.SUSPENDED


def test_transfer_and_attestation(world: AgentWorld) -> None:
    active(world)
    with pytest.raises(InvalidOwnerError):
        world.agents.transfer("trading", "team-inbox", actor=ADMIN)
    with pytest.raises(InvalidAgentError, match="owns agent"):
        world.agents.transfer("trading", "carol", actor=ADMIN)
    world.clock.advance(3600)
    moved = world.agents.transfer("trading", "dave", actor=ADMIN, reason="carol left the desk")
    assert moved.owner == "dave" and moved.transferred_at == T0 + timedelta(hours=1)
    assert moved.attestation_due_at == moved.transferred_at + world.policy.transfer_deadline
    with pytest.raises(NotTheOwnerError):
        world.agents.attest("trading", "carol", actor=ADMIN)
    attested = world.agents.attest("trading", "DAVE", actor=ADMIN)
    assert attested.last_attested_by == "dave" and attested.transferred_at is None
    assert attested.attestation_due_at == world.clock.now() + world.policy.attestation_interval  # type: ignore[operator]
    event = world.agents.events("trading")[-1]
    assert event.kind == "attested"
    transfer = next(e for e in world.agents.events("trading") if e.kind == "owner_transferred")
    assert transfer.details["previous_owner"] == "carol" and transfer.reason == (
        "carol left the desk")


def test_writes_are_conditional_on_the_version_read(world: AgentWorld) -> None:
    active(world)
    stale = world.agents.get("trading")
    world.agents.suspend("trading", actor=ADMIN)
    with pytest.raises(AgentChangedError):
        world.agent_store.save(replace(stale, purpose="x"), expected_version=stale.version)
