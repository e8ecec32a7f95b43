"""Agent definitions and their lifecycle (admin): register, show, change, recertify,
transfer, attest, suspend, resume, retire; events, residual use and orphans.

The calling admin token is the actor of every event (``admin:<token name>``). Retirement
answers 202 at once and runs its steps after the response; ``GET .../retirement`` follows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query
from pydantic import BaseModel, Field

from tabard.registry import (
    AgentDefinition,
    AgentEvent,
    AgentInstance,
    AgentPatch,
    AgentQuery,
    AgentReport,
    AgentSpec,
    AgentState,
    Finding,
    InvalidAgentError,
    ModelRef,
    PendingChange,
    ResidualUse,
    RetirementStatus,
    RetirementStep,
    SanitizationHook,
    SealCheck,
    UpdateResult,
)
from tabard.server.deps import Admin, Services

router = APIRouter(tags=["agents"])
_PREFIX = "/api/v1/agents"


# --- views ------------------------------------------------------------------------------------


class ModelView(BaseModel):
    provider: str = Field(max_length=128)
    name: str = Field(max_length=128)
    version: str = Field(max_length=128)


class ChangeView(BaseModel):
    id: str
    kind: str
    payload: dict[str, Any]
    requested_by: str
    requested_at: datetime
    status: str
    decided_by: str | None
    decided_at: datetime | None
    reason: str

    @classmethod
    def of(cls, c: PendingChange) -> ChangeView:
        return cls(id=c.id, kind=c.kind.value, payload=c.payload, requested_by=c.requested_by,
                   requested_at=c.requested_at, status=c.status.value, decided_by=c.decided_by,
                   decided_at=c.decided_at, reason=c.reason)


class FindingView(BaseModel):
    id: str
    agent: str
    kind: str
    detail: str
    action: str
    opened_at: datetime
    acted_at: datetime | None
    resolved_at: datetime | None

    @classmethod
    def of(cls, f: Finding) -> FindingView:
        return cls(id=f.id, agent=f.agent, kind=f.kind.value, detail=f.detail, action=f.action,
                   opened_at=f.opened_at, acted_at=f.acted_at, resolved_at=f.resolved_at)


class InstanceSummary(BaseModel):
    id: str
    spiffe_id: str
    node_id: str
    pid: int
    first_seen_at: datetime
    last_seen_at: datetime
    retired_at: datetime | None

    @classmethod
    def of(cls, i: AgentInstance) -> InstanceSummary:
        return cls(id=i.id, spiffe_id=str(i.spiffe_id), node_id=i.node_id, pid=i.pid,
                   first_seen_at=i.first_seen_at, last_seen_at=i.last_seen_at,
                   retired_at=i.retired_at)


class ResidualView(BaseModel):
    agent: str
    kind: str
    node_id: str | None
    spiffe_id: str
    entry_id: str | None
    first_at: datetime
    last_at: datetime
    count: int

    @classmethod
    def of(cls, r: ResidualUse) -> ResidualView:
        return cls(agent=r.agent, kind=r.kind, node_id=r.node_id, spiffe_id=r.spiffe_id,
                   entry_id=r.entry_id, first_at=r.first_at, last_at=r.last_at, count=r.count)


class StepView(BaseModel):
    number: int
    name: str
    status: str
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None
    result: dict[str, Any]
    error: str | None

    @classmethod
    def of(cls, s: RetirementStep) -> StepView:
        return cls(number=s.number, name=s.name.value, status=s.status.value,
                   attempts=s.attempts, started_at=s.started_at, completed_at=s.completed_at,
                   result=s.result, error=s.error)


class AgentSummary(BaseModel):
    """One row of ``GET /api/v1/agents``."""

    name: str
    owner: str
    state: str
    tier: str
    tools: list[str]
    checksum: str
    read_only: bool
    inbound_blocked: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, a: AgentDefinition) -> AgentSummary:
        return cls(name=a.name, owner=a.owner, state=a.state.value, tier=a.tier.value,
                   tools=list(a.tools), checksum=a.checksum, read_only=a.read_only,
                   inbound_blocked=a.inbound_blocked, created_at=a.created_at,
                   updated_at=a.updated_at)


class AgentView(AgentSummary):
    """``GET /api/v1/agents/{name}``: the definition with its pending changes, instances,
    open findings, retirement steps and residual use."""

    purpose: str
    model: ModelView
    hosting: str
    image_digest: str
    system_prompt_digest: str | None
    config: dict[str, Any] | None
    effective_tools: list[str]
    declared_tools: list[str]
    pending_changes: list[ChangeView]
    policy_bindings: dict[str, str]
    policy_binding: str | None
    delegation: str
    entry_id: str | None
    spiffe_id_template: str | None
    sanitization_hooks: list[str]
    state_changed_at: datetime
    last_attested_by: str | None
    last_attested_at: datetime | None
    attestation_due_at: datetime | None
    transferred_at: datetime | None
    seal: str | None
    sealed_through: int | None
    sealed_at: datetime | None
    version: int
    instances: list[InstanceSummary]
    open_findings: list[FindingView]
    retirement: list[StepView]
    residual_use: list[ResidualView]

    @classmethod
    def of_report(cls, r: AgentReport, trust_domain: str) -> AgentView:
        a = r.agent
        summary = AgentSummary.of(a).model_dump()
        return cls(
            **summary, purpose=a.purpose, model=ModelView(**a.model.as_dict()),
            hosting=a.hosting, image_digest=a.image_digest,
            system_prompt_digest=a.system_prompt_digest, config=a.config,
            effective_tools=list(a.tools), declared_tools=list(r.declared_tools),
            pending_changes=[ChangeView.of(c) for c in r.pending_changes],
            policy_bindings=dict(a.policy_bindings), policy_binding=a.policy_binding,
            delegation=a.delegation.value, entry_id=a.entry_id,
            spiffe_id_template=f"spiffe://{trust_domain}/agent/{a.name}/instance/{{instance}}",
            sanitization_hooks=[h.label for h in a.sanitization_hooks],
            state_changed_at=a.state_changed_at, last_attested_by=a.last_attested_by,
            last_attested_at=a.last_attested_at, attestation_due_at=a.attestation_due_at,
            transferred_at=a.transferred_at, seal=a.seal, sealed_through=a.sealed_through,
            sealed_at=a.sealed_at, version=a.version,
            instances=[InstanceSummary.of(i) for i in r.instances],
            open_findings=[FindingView.of(f) for f in r.findings],
            retirement=[StepView.of(s) for s in r.retirement],
            residual_use=[ResidualView.of(u) for u in r.residual_use],
        )


class EventView(BaseModel):
    seq: int
    kind: str
    from_state: str | None
    to_state: str | None
    actor: str
    reason: str
    at: datetime
    details: dict[str, Any]

    @classmethod
    def of(cls, e: AgentEvent) -> EventView:
        return cls(seq=e.seq, kind=e.kind,
                   from_state=e.from_state.value if e.from_state else None,
                   to_state=e.to_state.value if e.to_state else None, actor=e.actor,
                   reason=e.reason, at=e.at, details=e.details)


class SealView(BaseModel):
    sealed: bool
    valid: bool
    seal: str | None
    recomputed: str | None
    events: int

    @classmethod
    def of(cls, s: SealCheck) -> SealView:
        return cls(sealed=s.sealed, valid=s.valid, seal=s.seal, recomputed=s.recomputed,
                   events=s.events)


class EventsView(BaseModel):
    agent: str
    events: list[EventView]
    seal: SealView


class RetirementView(BaseModel):
    agent: str
    state: str
    finished: bool
    failed_step: str | None
    steps: list[StepView]

    @classmethod
    def of(cls, s: RetirementStatus) -> RetirementView:
        failed = s.failed
        return cls(agent=s.agent, state=s.state.value, finished=s.finished,
                   failed_step=failed.name.value if failed else None,
                   steps=[StepView.of(step) for step in s.steps])


class UpdateView(BaseModel):
    agent: AgentView
    applied: list[str]
    pending: list[ChangeView]


class OrphanView(BaseModel):
    agent: str
    owner: str
    state: str
    findings: list[FindingView]


class SweepView(BaseModel):
    agents: int
    opened: int
    resolved: int
    suspended: int
    narrowed: int


# --- requests -----------------------------------------------------------------------------------


class RegisterAgent(BaseModel):
    name: str = Field(max_length=63, examples=["trading"])
    owner: str = Field(max_length=255, examples=["carol"])
    purpose: str = Field(max_length=2000)
    model: ModelView
    hosting: str = Field(max_length=255, examples=["k8s/prod-eu"])
    tier: str = Field(max_length=16, examples=["dev"])
    tools: list[str] = Field(max_length=256, examples=[["quotes.read"]])
    image_digest: str = Field(max_length=200)
    system_prompt_digest: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] | None = None
    policy_bindings: dict[str, str] = Field(examples=[{"dev": "trading-dev"}])
    delegation: str = Field(default="hybrid", max_length=32)
    selectors: list[str] = Field(max_length=64, examples=[["unix:uid:1000"]])
    parent_id: str | None = Field(default=None, max_length=2048)
    sanitization_hooks: list[str] = Field(default_factory=list, max_length=16,
                                          examples=[["command:wipe-memory"]])
    activate: bool = False
    reason: str = Field(default="", max_length=2000)


class UpdateAgent(BaseModel):
    """Only the fields present change; ``requested_by`` names who asks for the change (the
    four-eyes rule compares it with the approver)."""

    purpose: str | None = Field(default=None, max_length=2000)
    hosting: str | None = Field(default=None, max_length=255)
    image_digest: str | None = Field(default=None, max_length=200)
    add_tools: list[str] = Field(default_factory=list, max_length=256)
    remove_tools: list[str] = Field(default_factory=list, max_length=256)
    model_provider: str | None = Field(default=None, max_length=128)
    model_name: str | None = Field(default=None, max_length=128)
    model_version: str | None = Field(default=None, max_length=128)
    tier: str | None = Field(default=None, max_length=16)
    system_prompt_digest: str | None = Field(default=None, max_length=200)
    clear_system_prompt_digest: bool = False
    config: dict[str, Any] | None = None
    clear_config: bool = False
    policy_bindings: dict[str, str] = Field(default_factory=dict)
    delegation: str | None = Field(default=None, max_length=32)
    selectors: list[str] | None = Field(default=None, max_length=64)
    parent_id: str | None = Field(default=None, max_length=2048)
    sanitization_hooks: list[str] | None = Field(default=None, max_length=16)
    requested_by: str | None = Field(default=None, max_length=255)
    reason: str = Field(default="", max_length=2000)


class Reason(BaseModel):
    reason: str = Field(default="", max_length=2000)


class Promote(BaseModel):
    tier: str = Field(max_length=16)
    policy_binding: str | None = Field(default=None, max_length=128)
    requested_by: str | None = Field(default=None, max_length=255)
    reason: str = Field(default="", max_length=2000)


class Recertify(BaseModel):
    approver: str = Field(max_length=255)
    change_id: str | None = Field(default=None, max_length=26)
    reject: bool = False
    reason: str = Field(default="", max_length=2000)


class Transfer(BaseModel):
    to: str = Field(max_length=255)
    reason: str = Field(default="", max_length=2000)


class Attest(BaseModel):
    owner: str = Field(max_length=255)
    reason: str = Field(default="", max_length=2000)


def _hooks(values: list[str]) -> list[SanitizationHook]:
    return [SanitizationHook.parse(v) for v in values]


def _view(services: Services, name: str) -> AgentView:
    return AgentView.of_report(services.agents.report(name), services.trust_domain.name)


# --- routes -------------------------------------------------------------------------------------


@router.post(_PREFIX, response_model=AgentView, status_code=201, summary="Register an agent")
def register_agent(body: RegisterAgent, services: Services, admin: Admin) -> AgentView:
    spec = AgentSpec(
        name=body.name, owner=body.owner, purpose=body.purpose,
        model=ModelRef(body.model.provider, body.model.name, body.model.version),
        hosting=body.hosting, tier=body.tier, tools=body.tools, image_digest=body.image_digest,
        selectors=body.selectors, policy_bindings=body.policy_bindings,
        system_prompt_digest=body.system_prompt_digest, config=body.config,
        delegation=body.delegation, parent_id=body.parent_id,
        sanitization_hooks=_hooks(body.sanitization_hooks),
    )
    agent = services.agents.register(spec, actor=admin.actor, reason=body.reason,
                                     activate=body.activate)
    return _view(services, agent.name)


@router.get(_PREFIX, response_model=list[AgentSummary], summary="List agents")
def list_agents(
    services: Services,
    admin: Admin,
    owner: Annotated[str | None, Query(max_length=255)] = None,
    state: Annotated[str | None, Query(max_length=32)] = None,
) -> list[AgentSummary]:
    parsed = None
    if state is not None:
        try:
            parsed = AgentState(state)
        except ValueError:
            raise InvalidAgentError(f"state {state!r} is not a lifecycle state") from None
    rows = services.agents.list(AgentQuery(owner=owner, state=parsed))
    return [AgentSummary.of(a) for a in rows]


@router.get("/api/v1/orphans", response_model=list[OrphanView],
            summary="Agents with open orphan findings")
def list_orphans(services: Services, admin: Admin) -> list[OrphanView]:
    return [OrphanView(agent=o.agent.name, owner=o.agent.owner, state=o.agent.state.value,
                       findings=[FindingView.of(f) for f in o.findings])
            for o in services.orphans.orphans()]


@router.post("/api/v1/orphans/sweep", response_model=SweepView,
             summary="Run the orphan sweep now")
def sweep_orphans(services: Services, admin: Admin) -> SweepView:
    report = services.orphans.sweep()
    return SweepView(agents=report.agents, opened=report.opened, resolved=report.resolved,
                     suspended=report.suspended, narrowed=report.narrowed)


@router.get(_PREFIX + "/{name}", response_model=AgentView, summary="Show an agent")
def get_agent(name: str, services: Services, admin: Admin) -> AgentView:
    return _view(services, name)


@router.patch(_PREFIX + "/{name}", response_model=UpdateView,
              summary="Change an agent (widening changes wait for recertification)")
def update_agent(name: str, body: UpdateAgent, services: Services, admin: Admin) -> UpdateView:
    values = body.model_dump(exclude={"requested_by", "reason", "sanitization_hooks"})
    hooks = _hooks(body.sanitization_hooks) if body.sanitization_hooks is not None else None
    result: UpdateResult = services.agents.update(
        name, AgentPatch(**values, sanitization_hooks=hooks), actor=admin.actor,
        requested_by=body.requested_by, reason=body.reason)
    return UpdateView(agent=_view(services, name), applied=list(result.applied),
                      pending=[ChangeView.of(c) for c in result.pending])


@router.post(_PREFIX + "/{name}/activate", response_model=AgentView, summary="Activate")
def activate_agent(name: str, body: Reason, services: Services, admin: Admin) -> AgentView:
    services.agents.activate(name, actor=admin.actor, reason=body.reason)
    return _view(services, name)


@router.post(_PREFIX + "/{name}/suspend", response_model=AgentView, summary="Suspend")
def suspend_agent(name: str, body: Reason, services: Services, admin: Admin) -> AgentView:
    services.agents.suspend(name, actor=admin.actor, reason=body.reason)
    return _view(services, name)


@router.post(_PREFIX + "/{name}/resume", response_model=AgentView, summary="Resume")
def resume_agent(name: str, body: Reason, services: Services, admin: Admin) -> AgentView:
    services.agents.resume(name, actor=admin.actor, reason=body.reason)
    return _view(services, name)


@router.post(_PREFIX + "/{name}/promote", response_model=UpdateView,
             summary="Ask for a higher tier (pending until recertified)")
def promote_agent(name: str, body: Promote, services: Services, admin: Admin) -> UpdateView:
    result = services.agents.promote(name, body.tier, actor=admin.actor,
                                     requested_by=body.requested_by,
                                     policy_binding=body.policy_binding, reason=body.reason)
    return UpdateView(agent=_view(services, name), applied=list(result.applied),
                      pending=[ChangeView.of(c) for c in result.pending])


@router.post(_PREFIX + "/{name}/recertify", response_model=list[ChangeView],
             summary="Approve (or reject) pending changes: an approver, not the requester")
def recertify_agent(name: str, body: Recertify, services: Services,
                    admin: Admin) -> list[ChangeView]:
    decided = services.agents.recertify(name, approver=body.approver, actor=admin.actor,
                                        change_id=body.change_id, reject=body.reject,
                                        reason=body.reason)
    return [ChangeView.of(c) for c in decided]


@router.post(_PREFIX + "/{name}/transfer", response_model=AgentView,
             summary="Give the agent a new owner (who must attest before the deadline)")
def transfer_agent(name: str, body: Transfer, services: Services, admin: Admin) -> AgentView:
    services.agents.transfer(name, body.to, actor=admin.actor, reason=body.reason)
    return _view(services, name)


@router.post(_PREFIX + "/{name}/attest", response_model=AgentView,
             summary="The owner attests to the agent")
def attest_agent(name: str, body: Attest, services: Services, admin: Admin) -> AgentView:
    services.agents.attest(name, body.owner, actor=admin.actor, reason=body.reason)
    return _view(services, name)


@router.post(_PREFIX + "/{name}/retire", response_model=RetirementView, status_code=202,
             summary="Retire the agent: the steps run after the answer")
def retire_agent(name: str, body: Reason, services: Services, admin: Admin,
                 tasks: BackgroundTasks) -> RetirementView:
    status = services.retirement.start(name, actor=admin.actor, reason=body.reason)
    if not status.finished:
        tasks.add_task(services.retirement.run, name)
    return RetirementView.of(status)


@router.get(_PREFIX + "/{name}/retirement", response_model=RetirementView,
            summary="Progress of the agent's retirement")
def get_retirement(name: str, services: Services, admin: Admin) -> RetirementView:
    return RetirementView.of(services.retirement.status(name))


@router.get(_PREFIX + "/{name}/events", response_model=EventsView,
            summary="The agent's lifecycle events, and its seal once retired")
def list_events(name: str, services: Services, admin: Admin) -> EventsView:
    events = services.agents.events(name)
    return EventsView(agent=name, events=[EventView.of(e) for e in events],
                      seal=SealView.of(services.retirement.verify_seal(name)))


@router.get(_PREFIX + "/{name}/changes", response_model=list[ChangeView],
            summary="Every change requested for the agent")
def list_changes(name: str, services: Services, admin: Admin) -> list[ChangeView]:
    return [ChangeView.of(c) for c in services.agents.changes(name)]


@router.get(_PREFIX + "/{name}/residual", response_model=list[ResidualView],
            summary="Refused attempts to use the identity of a retiring or retired agent")
def list_residual(name: str, services: Services, admin: Admin) -> list[ResidualView]:
    return [ResidualView.of(r) for r in services.agents.report(name).residual_use]
