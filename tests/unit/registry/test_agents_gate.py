"""SVIDs and instances are issued only while an agent's definition is active (ARCHITECTURE §5),
on the node API path: InstanceService.register and EntrySvidService (X509 and JWT)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tabard.authority import Authority, MemoryKeyManager
from tabard.registry import (
    AgentNotActiveError,
    AgentPatch,
    AgentRetiredError,
    AgentState,
    EntrySpec,
    EntrySvidService,
    InstanceReport,
    NodePrincipal,
    X509SvidRequest,
    parse_selectors,
)
from tests.fakes.agents import TD, AgentWorld, spec
from tests.fakes.authority_store import InMemoryAuthorityStore

ADMIN = "admin:ops"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AgentWorld]:
    w = AgentWorld(f"sqlite:///{tmp_path / 'tabard.db'}")
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def svids(world: AgentWorld) -> EntrySvidService:
    authority = Authority(TD, MemoryKeyManager(), InMemoryAuthorityStore(), world.clock)
    authority.ensure_initialized()
    return world.svids(authority)


def principal(world: AgentWorld) -> NodePrincipal:
    return NodePrincipal(world.node.id, world.node.spiffe_id)


def report(entry_id: str, pid: int = 100) -> InstanceReport:
    return InstanceReport(entry_id=entry_id, pid=pid, start_time=5.0, uid=1000, gid=1000,
                          exe_path="/usr/bin/agent", exe_sha256="cd" * 32,
                          selectors=parse_selectors(["unix:uid:1000"]))


def key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


def test_only_active_and_pending_definitions_get_instances_and_svids(
        world: AgentWorld, svids: EntrySvidService) -> None:
    agent = world.agents.register(spec(), actor=ADMIN)
    entry_id = agent.entry_id or ""
    node = principal(world)
    with pytest.raises(AgentNotActiveError, match="'trading' is registered"):
        world.instances.register(node, report(entry_id))
    world.agents.activate("trading", actor=ADMIN)
    instance = world.instances.register(node, report(entry_id)).instance
    request = X509SvidRequest(entry_id, instance.id, key())
    [issued] = svids.x509(node, [request])
    assert issued.svid.spiffe_id == instance.spiffe_id
    assert svids.jwt(node, entry_id, instance.id, ["aud"]).spiffe_id == instance.spiffe_id

    # a pending change keeps the old grants working
    world.agents.update("trading", AgentPatch(add_tools=["x"]), actor=ADMIN)
    assert world.agents.get("trading").state is AgentState.PENDING_RECERTIFICATION
    assert len(svids.x509(node, [request])) == 1

    world.agents.suspend("trading", actor=ADMIN)
    assert svids.x509(node, [request]) == []
    with pytest.raises(AgentNotActiveError, match="suspended"):
        svids.jwt(node, entry_id, instance.id, ["aud"])
    with pytest.raises(AgentNotActiveError):
        world.instances.register(node, report(entry_id, pid=101))
    assert world.residual.list() == []  # suspension is not residual use


def test_a_refused_agent_does_not_stop_the_rest_of_the_batch(
        world: AgentWorld, svids: EntrySvidService) -> None:
    world.agents.register(spec(), actor=ADMIN, activate=True)
    world.agents.suspend("trading", actor=ADMIN)
    node = principal(world)
    suspended_entry = world.agents.get("trading").entry_id or ""
    web = world.entries.create(EntrySpec(spiffe_id=f"spiffe://{TD.name}/web",
                                         parent_id=str(world.node.spiffe_id),
                                         selectors=["unix:uid:33"]))
    unregistered = world.entries.create(EntrySpec(
        spiffe_id=f"spiffe://{TD.name}/agent/nobody/worker", parent_id=str(world.node.spiffe_id),
        selectors=["unix:uid:34"]))
    issued = svids.x509(node, [X509SvidRequest(web.id, None, key()),
                               X509SvidRequest(suspended_entry, None, key()),
                               X509SvidRequest(unregistered.id, None, key())])
    assert sorted(i.entry_id for i in issued) == sorted([web.id, unregistered.id])


def test_retired_agents_are_refused_and_every_attempt_is_recorded(
        world: AgentWorld, svids: EntrySvidService) -> None:
    world.agents.register(spec(), actor=ADMIN, activate=True)
    entry_id = world.agents.get("trading").entry_id or ""
    node = principal(world)
    instance = world.instances.register(node, report(entry_id)).instance
    world.retirement.start("trading", actor=ADMIN)
    world.retirement.run("trading")
    assert world.agents.get("trading").state is AgentState.RETIRED

    with pytest.raises(AgentRetiredError, match="recorded"):
        world.instances.register(node, report(entry_id, pid=200))
    assert svids.x509(node, [X509SvidRequest(entry_id, instance.id, key())]) == []
    assert svids.x509(node, [X509SvidRequest(entry_id, instance.id, key())]) == []
    with pytest.raises(AgentRetiredError):
        svids.jwt(node, entry_id, instance.id, ["aud"])
    rows = {(r.kind, r.spiffe_id): r.count for r in world.residual.list("trading")}
    template = f"spiffe://{TD.name}/agent/trading/instance/{{instance}}"
    assert rows == {
        ("instance_registration", template): 1,
        ("x509_svid", str(instance.spiffe_id)): 2,
        ("jwt_svid", str(instance.spiffe_id)): 1,
    }
    assert {r.node_id for r in world.residual.list("trading")} == {world.node.id}
