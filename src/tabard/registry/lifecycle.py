"""The agent lifecycle (ARCHITECTURE §5): states, transitions, movers and recertification.

States and the commands that move between them::

    registered ──activate──▶ active ◀──resume── suspended
                               │  ▲                ▲  │
                         mover │  │ recertify      │  │ resume (changes pending)
                               ▼  │                │  ▼
                      pending_recertification ─suspend─┘
    any of the above ──retire──▶ retiring ──(all steps done)──▶ retired

Beyond the diagram of §5, ``pending_recertification`` can be suspended and a suspended agent
with pending changes resumes into ``pending_recertification``: suspension must stay
possible at any moment short of retirement.

Mover events (a tool added, the tier promoted, the model or the checksum changed) create a
:class:`~tabard.registry.agents.PendingChange` each; the agent keeps its approved grants and
the new one waits until an approver other than the requester recertifies it (four eyes).
Narrowing changes (a tool removed, a tier lowered, purpose and hosting edits) apply at once.
A ``registered`` agent has never held grants, so its edits apply at once too.

Every change of state or definition appends an event (actor, reason, time) in the same
transaction as the change.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from tabard.clock import Clock
from tabard.errors import Invalid
from tabard.registry.agent_errors import (
    AgentChangedError,
    AgentExistsError,
    AgentNotFoundError,
    ChangeNotFoundError,
    FourEyesError,
    IllegalTransitionError,
    InvalidAgentError,
    InvalidOwnerError,
    NoPendingChangeError,
    NotAnApproverError,
    NotTheOwnerError,
    PolicyBindingRequiredError,
)
from tabard.registry.agents import (
    MAX_TOOLS,
    AgentDefinition,
    AgentEvent,
    AgentQuery,
    AgentSpec,
    AgentState,
    ChangeKind,
    ChangeStatus,
    Delegation,
    EventDraft,
    Finding,
    FindingKind,
    IdentityUse,
    ModelRef,
    PendingChange,
    ResidualUse,
    RetirementStep,
    SanitizationHook,
    Tier,
    agent_checksum,
    normalize_digest,
    parse_tier,
    validate_binding,
    validate_config,
    validate_hooks,
    validate_name,
    validate_tools,
)
from tabard.registry.entries import (
    INSTANCE_PLACEHOLDER,
    EntryPatch,
    EntrySpec,
    validate_spec,
)
from tabard.registry.errors import EntryNotFoundError
from tabard.registry.instances import AgentInstance, InstanceQuery, new_ulid
from tabard.registry.ports import (
    AgentStore,
    DirectoryPerson,
    FindingStore,
    HookRunner,
    InstanceStore,
    NodeStore,
    OwnerDirectory,
    ResidualUseStore,
)
from tabard.registry.services import EntryService
from tabard.spiffe import TrustDomain

__all__ = [
    "APPROVER_ROLE",
    "TRANSITIONS",
    "AgentIdentityGate",
    "AgentPatch",
    "AgentReport",
    "AgentService",
    "LifecyclePolicy",
    "UpdateResult",
    "check_transition",
    "same_person",
]

APPROVER_ROLE = "approver"
S = AgentState
TRANSITIONS: Mapping[AgentState, frozenset[AgentState]] = {
    S.REGISTERED: frozenset({S.ACTIVE, S.RETIRING}),
    S.ACTIVE: frozenset({S.SUSPENDED, S.PENDING_RECERTIFICATION, S.RETIRING}),
    S.PENDING_RECERTIFICATION: frozenset({S.ACTIVE, S.SUSPENDED, S.RETIRING}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.PENDING_RECERTIFICATION, S.RETIRING}),
    S.RETIRING: frozenset({S.RETIRED}),
    S.RETIRED: frozenset(),
}
_COMMAND_FROM = {
    "activate": "a registered agent",
    "suspend": "an active agent or one pending recertification",
    "resume": "a suspended agent",
    "retire": "an agent that is not retiring or retired",
}


def check_transition(name: str, current: AgentState, target: AgentState, command: str) -> None:
    """Refuse a transition §5 does not allow, naming what the command applies to."""
    if target in TRANSITIONS[current]:
        return
    applies = _COMMAND_FROM.get(command)
    hint = f"; {command} applies to {applies}" if applies else ""
    raise IllegalTransitionError(f"cannot {command} agent {name!r}: it is {current.value}{hint}")


def same_person(a: str, b: str) -> bool:
    """Whether two actor names are one person: ``admin:carol`` (an admin token named after
    its holder) and ``carol`` are; names compare case-insensitively."""

    def bare(value: str) -> str:
        return value.strip().removeprefix("admin:").casefold()

    return bare(a) == bare(b)


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """The deployment's lifecycle rules (defaults suit a production deployment).

    * ``transfer_deadline``: a new owner must attest within it, or the agent is narrowed;
    * ``attestation_interval``: owners re-attest this often (``None``: never required);
    * ``orphan_action``: ``flag`` only, or ``suspend`` an orphan after ``orphan_grace``;
    * ``stale_after``: an active agent without an instance seen for this long is flagged;
    * ``sweep_interval``: how often the server runs the orphan sweep;
    * ``hook_timeout``: the longest a sanitisation hook may run.
    """

    transfer_deadline: timedelta = timedelta(days=7)
    attestation_interval: timedelta | None = timedelta(days=90)
    orphan_action: str = "flag"
    orphan_grace: timedelta = timedelta(days=3)
    stale_after: timedelta = timedelta(days=30)
    sweep_interval: timedelta = timedelta(hours=1)
    hook_timeout: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.orphan_action not in ("flag", "suspend"):
            raise Invalid("orphan_action must be flag or suspend")
        for name in ("transfer_deadline", "orphan_grace", "stale_after", "sweep_interval",
                     "hook_timeout"):
            if getattr(self, name) <= timedelta(0):
                raise Invalid(f"{name} must be positive")
        if self.attestation_interval is not None and self.attestation_interval <= timedelta(0):
            raise Invalid("attestation_interval must be positive")


# --- the gate on the node API path -------------------------------------------------------------


class AgentIdentityGate:
    """SVIDs and instances only while the definition is active (or pending recertification,
    where the old grants keep working); attempts on retiring or retired agents are recorded
    as residual use. Entries under ``/agent/<name>/`` of a name nobody registered are not
    agents' entries and pass."""

    def __init__(self, agents: AgentStore, residual: ResidualUseStore, clock: Clock) -> None:
        self._agents = agents
        self._residual = residual
        self._clock = clock

    def refused(self, uses: Sequence[IdentityUse]) -> dict[str, AgentState]:
        if not uses:
            return {}
        states = self._agents.states({u.agent for u in uses})
        refused = {name: state for name, state in states.items()
                   if not state.issues_identities}
        if refused:
            now = self._clock.now()
            for use in uses:
                state = refused.get(use.agent)
                if state is not None and state.leaving:
                    self._residual.record(use, now)
        return refused


# --- use cases -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPatch:
    """An update: ``None`` leaves a field as it is. ``model_*`` merge into the current model;
    ``policy_bindings`` are merged per tier (an empty name removes that tier's binding)."""

    purpose: str | None = None
    hosting: str | None = None
    image_digest: str | None = None
    add_tools: Sequence[str] = ()
    remove_tools: Sequence[str] = ()
    model_provider: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    tier: str | None = None
    system_prompt_digest: str | None = None
    clear_system_prompt_digest: bool = False
    config: dict[str, Any] | None = None
    clear_config: bool = False
    policy_bindings: Mapping[str, str] = field(default_factory=dict)
    delegation: str | None = None
    selectors: Sequence[str] | None = None
    parent_id: str | None = None
    sanitization_hooks: Sequence[SanitizationHook] | None = None


@dataclass(frozen=True, slots=True)
class UpdateResult:
    agent: AgentDefinition
    applied: tuple[str, ...]
    """Fields changed at once."""
    pending: tuple[PendingChange, ...]
    """Changes that now wait for recertification."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentReport:
    """Everything ``tabard agents show`` prints."""

    agent: AgentDefinition
    pending_changes: tuple[PendingChange, ...]
    instances: tuple[AgentInstance, ...]
    findings: tuple[Finding, ...]
    residual_use: tuple[ResidualUse, ...]
    retirement: tuple[RetirementStep, ...]

    @property
    def declared_tools(self) -> tuple[str, ...]:
        """Approved tools plus those pending recertification."""
        pending = {str(c.payload["tool"]) for c in self.pending_changes
                   if c.kind is ChangeKind.TOOL_ADD}
        return tuple(sorted(set(self.agent.tools) | pending))


def _draft(kind: str, actor: str, reason: str, at: datetime, *,
           from_state: AgentState | None = None, to_state: AgentState | None = None,
           **details: Any) -> EventDraft:
    return EventDraft(kind=kind, actor=actor, reason=reason, at=at, from_state=from_state,
                      to_state=to_state, details=details)


def _actor(value: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise InvalidAgentError("actor must be 1-255 characters")
    return value.strip()


def _reason(value: str) -> str:
    if not isinstance(value, str) or len(value) > 2000:
        raise InvalidAgentError("reason must be at most 2000 characters")
    return value.strip()


def _text(name: str, value: str, limit: int) -> str:
    stripped = value.strip() if isinstance(value, str) else ""
    if not stripped or len(stripped) > limit or any(ord(c) < 32 and c not in "\t\n"
                                                   for c in stripped):
        raise InvalidAgentError(f"{name} must be 1-{limit} printable characters")
    return stripped


class AgentService:
    """Agent definitions and their lifecycle, except retirement
    (:class:`~tabard.registry.retirement.RetirementService`)."""

    def __init__(self, agents: AgentStore, findings: FindingStore, instances: InstanceStore,
                 residual: ResidualUseStore, directory: OwnerDirectory, entries: EntryService,
                 nodes: NodeStore, hooks: HookRunner, trust_domain: TrustDomain, clock: Clock,
                 policy: LifecyclePolicy | None = None) -> None:
        self._agents = agents
        self._findings = findings
        self._instances = instances
        self._residual = residual
        self._directory = directory
        self._entries = entries
        self._nodes = nodes
        self._hooks = hooks
        self._td = trust_domain
        self._clock = clock
        self._policy = policy or LifecyclePolicy()

    @property
    def policy(self) -> LifecyclePolicy:
        return self._policy

    # --- reading ---------------------------------------------------------------------------

    def get(self, name: str) -> AgentDefinition:
        agent = self._agents.get(name) if isinstance(name, str) else None
        if agent is None:
            raise AgentNotFoundError(f"no agent named {name!r}")
        return agent

    def list(self, query: AgentQuery | None = None) -> builtins.list[AgentDefinition]:
        return self._agents.list(query or AgentQuery())

    def report(self, name: str, *, instance_limit: int = 100) -> AgentReport:
        agent = self.get(name)
        return AgentReport(
            agent=agent,
            pending_changes=tuple(self._agents.changes(name, pending_only=True)),
            instances=tuple(self._instances.list(InstanceQuery(agent=name,
                                                               limit=instance_limit))),
            findings=tuple(self._findings.list(agent=name, open_only=True)),
            residual_use=tuple(self._residual.list(name)),
            retirement=tuple(self._agents.steps(name)),
        )

    def events(self, name: str) -> builtins.list[AgentEvent]:
        self.get(name)
        return self._agents.events(name)

    def changes(self, name: str, *, pending_only: bool = False) -> builtins.list[PendingChange]:
        self.get(name)
        return self._agents.changes(name, pending_only=pending_only)

    # --- the directory ----------------------------------------------------------------------

    def _owner(self, user_name: str) -> DirectoryPerson:
        """A valid owner: a known, active person (docs/design/agents-and-directory.md)."""
        if not isinstance(user_name, str) or not user_name.strip() or len(user_name) > 255:
            raise InvalidOwnerError("owner must be a directory user name")
        person = self._directory.find_person(user_name.strip())
        if person is None:
            raise InvalidOwnerError(f"owner {user_name!r} is not a user of the directory "
                                    "(groups are not owners)")
        if not person.is_person:
            raise InvalidOwnerError(f"owner {user_name!r} is not a person (shared mailbox or "
                                    "service account)")
        if not person.active:
            raise InvalidOwnerError(f"owner {user_name!r} is not active in the directory")
        return person

    def _approver(self, user_name: str) -> DirectoryPerson:
        person = (self._directory.find_person(user_name.strip())
                  if isinstance(user_name, str) and user_name.strip() else None)
        if (person is None or not person.active or not person.is_person
                or APPROVER_ROLE not in person.roles):
            raise NotAnApproverError(f"{user_name!r} is not an active directory user with "
                                     f"the {APPROVER_ROLE!r} role")
        return person

    # --- registration -------------------------------------------------------------------------

    def _parent(self, parent_id: str | None) -> str:
        if parent_id:
            return parent_id
        nodes = [n for n in self._nodes.list() if not n.banned]
        if len(nodes) != 1:
            raise InvalidAgentError(f"parent_id is required: there are {len(nodes)} attested "
                                    "nodes, so none is the default")
        return str(nodes[0].spiffe_id)

    def _template(self, name: str) -> str:
        return f"spiffe://{self._td.name}/agent/{name}/instance/{INSTANCE_PLACEHOLDER}"

    def register(self, spec: AgentSpec, *, actor: str, reason: str = "",
                 activate: bool = False) -> AgentDefinition:
        """Validate everything, store the definition (``registered``), create its
        instance-template entry, and activate it if asked."""
        actor, reason = _actor(actor), _reason(reason)
        name = validate_name(spec.name)
        if self._agents.get(name) is not None:
            raise AgentExistsError(f"an agent named {name!r} exists already (names are never "
                                   "reused)")
        owner = self._owner(spec.owner)
        tier = parse_tier(spec.tier)
        tools = validate_tools(spec.tools)
        if not tools:
            raise InvalidAgentError("an agent declares at least one tool")
        bindings = self._bindings({}, spec.policy_bindings)
        if tier.value not in bindings:
            raise PolicyBindingRequiredError(f"no policy binding for tier {tier.value}: give "
                                             f"one (e.g. {tier.value}=<policy set>)")
        hooks = self._checked_hooks(spec.sanitization_hooks)
        spd = (normalize_digest("system_prompt_digest", spec.system_prompt_digest)
               if spec.system_prompt_digest is not None else None)
        config = validate_config(spec.config)
        try:
            delegation = Delegation(spec.delegation)
        except ValueError:
            raise InvalidAgentError(f"delegation {spec.delegation!r} must be hybrid, "
                                    "impersonation or agent_as_principal") from None
        entry_spec = EntrySpec(spiffe_id=self._template(name),
                               parent_id=self._parent(spec.parent_id),
                               selectors=list(spec.selectors))
        validate_spec(entry_spec, self._td, self._entries.limits)
        now = self._clock.now()
        interval = self._policy.attestation_interval
        agent = AgentDefinition(
            name=name, owner=owner.user_name, purpose=_text("purpose", spec.purpose, 2000),
            model=spec.model, hosting=_text("hosting", spec.hosting, 255), tier=tier,
            tools=tools, image_digest=normalize_digest("image_digest", spec.image_digest),
            system_prompt_digest=spd, config=config,
            checksum=agent_checksum(spd, tools, config), policy_bindings=bindings,
            delegation=delegation, entry_id=None, sanitization_hooks=hooks,
            state=AgentState.REGISTERED, state_changed_at=now,
            attestation_due_at=now + interval if interval is not None else None,
            created_at=now, updated_at=now,
        )
        stored = self._agents.add(agent, [_draft(
            "registered", actor, reason, now, to_state=AgentState.REGISTERED,
            owner=agent.owner, tier=tier.value, tools=list(tools), checksum=agent.checksum,
            model=agent.model.as_dict(), image_digest=agent.image_digest,
            policy_bindings=dict(bindings), delegation=delegation.value)])
        try:
            entry = self._entries.create(entry_spec)
        except BaseException:
            self._agents.remove_unused(name)
            raise
        stored = self._agents.save(
            replace(stored, entry_id=entry.id, updated_at=now), expected_version=stored.version,
            events=[_draft("entry_created", actor, reason, now, entry_id=entry.id,
                           spiffe_id=entry.spiffe_id.text, parent_id=str(entry.parent_id),
                           selectors=[str(s) for s in entry.selectors])])
        if activate:
            stored = self.activate(name, actor=actor, reason=reason)
        return stored

    def _bindings(self, current: Mapping[str, str],
                  given: Mapping[str, str]) -> dict[str, str]:
        merged = dict(current)
        for tier, policy_set in given.items():
            if policy_set == "":
                merged.pop(parse_tier(tier).value, None)
                continue
            parsed, name = validate_binding(tier, policy_set)
            merged[parsed.value] = name
        return dict(sorted(merged.items()))

    def _checked_hooks(self, hooks: Sequence[SanitizationHook]) -> tuple[SanitizationHook, ...]:
        checked = validate_hooks(list(hooks))
        for hook in checked:
            self._hooks.check(hook)
        return checked

    # --- state commands ------------------------------------------------------------------------

    def _transition(self, agent: AgentDefinition, target: AgentState, command: str, *,
                    actor: str, reason: str, kind: str | None = None,
                    changes: Sequence[PendingChange] = (), **details: Any) -> AgentDefinition:
        check_transition(agent.name, agent.state, target, command)
        now = self._clock.now()
        event = _draft(kind or command, actor, reason, now, from_state=agent.state,
                       to_state=target, **details)
        return self._agents.save(
            replace(agent, state=target, state_changed_at=now, updated_at=now),
            expected_version=agent.version, events=[event], changes=changes)

    def activate(self, name: str, *, actor: str, reason: str = "") -> AgentDefinition:
        agent = self.get(name)
        return self._transition(agent, AgentState.ACTIVE, "activate", actor=_actor(actor),
                                reason=_reason(reason), kind="activated")

    def suspend(self, name: str, *, actor: str, reason: str = "") -> AgentDefinition:
        agent = self.get(name)
        if agent.state not in (AgentState.ACTIVE, AgentState.PENDING_RECERTIFICATION):
            check_transition(name, agent.state, AgentState.RETIRED, "suspend")  # raises
        return self._transition(agent, AgentState.SUSPENDED, "suspend", actor=_actor(actor),
                                reason=_reason(reason), kind="suspended")

    def resume(self, name: str, *, actor: str, reason: str = "") -> AgentDefinition:
        agent = self.get(name)
        if agent.state is not AgentState.SUSPENDED:
            check_transition(name, agent.state, AgentState.RETIRED, "resume")  # raises
        pending = self._agents.changes(name, pending_only=True)
        target = AgentState.PENDING_RECERTIFICATION if pending else AgentState.ACTIVE
        return self._transition(agent, target, "resume", actor=_actor(actor),
                                reason=_reason(reason), kind="resumed")

    # --- movers and edits ----------------------------------------------------------------------

    def update(self, name: str, patch: AgentPatch, *, actor: str,
               requested_by: str | None = None, reason: str = "") -> UpdateResult:
        """Apply narrowing edits at once; turn every widening one into a pending change."""
        actor, reason = _actor(actor), _reason(reason)
        requester = _actor(requested_by) if requested_by else actor
        agent = self.get(name)
        self._editable(agent)
        now = self._clock.now()
        draft_mode = agent.state is AgentState.REGISTERED
        applied: builtins.list[str] = []
        new: dict[str, Any] = {}
        pending: builtins.list[tuple[ChangeKind, dict[str, Any]]] = []
        existing = self._agents.changes(name, pending_only=True)

        if patch.purpose is not None:
            new["purpose"] = _text("purpose", patch.purpose, 2000)
        if patch.hosting is not None:
            new["hosting"] = _text("hosting", patch.hosting, 255)
        if patch.image_digest is not None:
            new["image_digest"] = normalize_digest("image_digest", patch.image_digest)
        if patch.delegation is not None:
            try:
                new["delegation"] = Delegation(patch.delegation)
            except ValueError:
                raise InvalidAgentError(f"delegation {patch.delegation!r} must be hybrid, "
                                        "impersonation or agent_as_principal") from None
        if patch.sanitization_hooks is not None:
            new["sanitization_hooks"] = self._checked_hooks(patch.sanitization_hooks)
        if patch.policy_bindings:
            new["policy_bindings"] = self._bindings(agent.policy_bindings, patch.policy_bindings)

        tools = set(agent.tools)
        removed = set(validate_tools(patch.remove_tools))
        added = set(validate_tools(patch.add_tools))
        if added & removed:
            raise InvalidAgentError(f"tools both added and removed: {sorted(added & removed)}")
        unknown = removed - tools - {str(c.payload["tool"]) for c in existing
                                     if c.kind is ChangeKind.TOOL_ADD}
        if unknown:
            raise InvalidAgentError(f"not tools of agent {name!r}: {sorted(unknown)}")
        if removed & tools:
            tools -= removed
        cancelled = [c for c in existing
                     if c.kind is ChangeKind.TOOL_ADD and c.payload["tool"] in removed]
        for tool in sorted(added - tools):
            if draft_mode:
                tools.add(tool)
            elif any(c.kind is ChangeKind.TOOL_ADD and c.payload["tool"] == tool
                     for c in existing):
                raise InvalidAgentError(f"tool {tool!r} is already pending recertification")
            else:
                pending.append((ChangeKind.TOOL_ADD, {"tool": tool}))
        if len(tools) + sum(1 for kind, _ in pending if kind is ChangeKind.TOOL_ADD) > MAX_TOOLS:
            raise InvalidAgentError(f"an agent declares at most {MAX_TOOLS} tools")
        if not tools and not pending:
            raise InvalidAgentError("an agent keeps at least one tool (retire it instead)")
        if tools != set(agent.tools):
            new["tools"] = tuple(sorted(tools))

        if any(v is not None for v in (patch.model_provider, patch.model_name,
                                       patch.model_version)):
            model = ModelRef(patch.model_provider or agent.model.provider,
                             patch.model_name or agent.model.name,
                             patch.model_version or agent.model.version)
            if model != agent.model:
                if draft_mode:
                    new["model"] = model
                else:
                    pending.append((ChangeKind.MODEL_CHANGE, {"model": model.as_dict()}))

        bindings: Mapping[str, str] = new.get("policy_bindings", agent.policy_bindings)
        if patch.tier is not None:
            tier = parse_tier(patch.tier)
            if tier.value not in bindings:
                raise PolicyBindingRequiredError(
                    f"no policy binding for tier {tier.value}: add one first (--policy-binding "
                    f"{tier.value}=<policy set>)")
            if tier.rank > agent.tier.rank and not draft_mode:
                pending.append((ChangeKind.TIER_PROMOTE, {"tier": tier.value}))
            elif tier != agent.tier:
                new["tier"] = tier
        if agent.tier.value not in bindings and new.get("tier", agent.tier) == agent.tier:
            raise PolicyBindingRequiredError(f"the binding of the current tier "
                                             f"{agent.tier.value} cannot be removed")

        spd = agent.system_prompt_digest
        if patch.clear_system_prompt_digest:
            spd = None
        elif patch.system_prompt_digest is not None:
            spd = normalize_digest("system_prompt_digest", patch.system_prompt_digest)
        config = agent.config
        if patch.clear_config:
            config = None
        elif patch.config is not None:
            config = validate_config(patch.config)
        if spd != agent.system_prompt_digest or config != agent.config:
            if draft_mode:
                new["system_prompt_digest"], new["config"] = spd, config
            else:
                checksum = agent_checksum(spd, new.get("tools", agent.tools), config)
                pending.append((ChangeKind.CHECKSUM_CHANGE, {
                    "system_prompt_digest": spd, "config": config, "checksum": checksum}))
        if "tools" in new or "system_prompt_digest" in new or "config" in new:
            new["checksum"] = agent_checksum(new.get("system_prompt_digest", spd),
                                             new.get("tools", agent.tools),
                                             new.get("config", config))

        if patch.selectors is not None or patch.parent_id is not None:
            entry_id = self._update_entry(agent, patch.selectors, patch.parent_id)
            if entry_id != agent.entry_id:
                new["entry_id"] = entry_id
            applied.append("selectors" if patch.selectors is not None else "parent_id")

        if not new and not pending and not applied and not cancelled:
            raise InvalidAgentError("nothing to change")
        return self._store_update(agent, new, pending, existing, cancelled, applied, actor,
                                  requester, reason, now)

    def _store_update(self, agent: AgentDefinition, new: dict[str, Any],
                      pending: Sequence[tuple[ChangeKind, dict[str, Any]]],
                      existing: Sequence[PendingChange], cancelled: Sequence[PendingChange],
                      applied: Sequence[str], actor: str, requester: str, reason: str,
                      now: datetime) -> UpdateResult:
        events: builtins.list[EventDraft] = []
        changes: builtins.list[PendingChange] = []
        applied_fields = [*applied, *new]
        if new:
            events.append(_draft("updated", actor, reason, now, fields=sorted(new),
                                 values=_plain(new)))
        for old in cancelled:
            changes.append(replace(old, status=ChangeStatus.CANCELLED, decided_by=actor,
                                   decided_at=now))
            events.append(_draft("change_cancelled", actor, reason, now, change_id=old.id,
                                 change=old.kind.value, payload=old.payload))
        superseded_kinds = {ChangeKind.MODEL_CHANGE, ChangeKind.TIER_PROMOTE,
                            ChangeKind.CHECKSUM_CHANGE}
        for kind, payload in pending:
            if kind in superseded_kinds:
                for old in existing:
                    if old.kind is kind:
                        changes.append(replace(old, status=ChangeStatus.SUPERSEDED,
                                               decided_by=actor, decided_at=now))
                        events.append(_draft("change_superseded", actor, reason, now,
                                             change_id=old.id, change=kind.value))
            change = PendingChange(id=new_ulid(now), agent=agent.name, kind=kind,
                                   payload=payload, requested_by=requester, requested_at=now,
                                   reason=reason)
            changes.append(change)
            events.append(_draft("change_requested", actor, reason, now, change_id=change.id,
                                 change=kind.value, payload=payload, requested_by=requester))
        target = agent.state
        closed = {c.id for c in changes}
        still_pending = [c for c in existing if c.id not in closed] + [
            c for c in changes if c.status is ChangeStatus.PENDING]
        if pending and agent.state is AgentState.ACTIVE:
            target = AgentState.PENDING_RECERTIFICATION
            events.append(_draft("pending_recertification", actor, reason, now,
                                 from_state=agent.state, to_state=target,
                                 changes=[c.id for c in changes
                                          if c.status is ChangeStatus.PENDING]))
        elif not still_pending and agent.state is AgentState.PENDING_RECERTIFICATION:
            target = AgentState.ACTIVE
            events.append(_draft("recertification_complete", actor, reason, now,
                                 from_state=agent.state, to_state=target,
                                 detail="no change is pending any more"))
        updated = replace(agent, **new, updated_at=now, state=target,
                          state_changed_at=now if target != agent.state
                          else agent.state_changed_at)
        if not events:  # only the entry changed
            events.append(_draft("updated", actor, reason, now, fields=applied))
        stored = self._agents.save(updated, expected_version=agent.version, events=events,
                                   changes=changes)
        return UpdateResult(stored, tuple(applied_fields),
                            tuple(c for c in changes if c.status is ChangeStatus.PENDING))

    def _update_entry(self, agent: AgentDefinition, selectors: Sequence[str] | None,
                      parent_id: str | None) -> str:
        if agent.entry_id is not None:
            try:
                entry = self._entries.update(agent.entry_id, EntryPatch(
                    selectors=list(selectors) if selectors is not None else None,
                    parent_id=parent_id))
                return entry.id
            except EntryNotFoundError:
                pass
        if selectors is None:
            raise InvalidAgentError(f"agent {agent.name!r} has no entry: give its selectors")
        entry = self._entries.create(EntrySpec(spiffe_id=self._template(agent.name),
                                               parent_id=self._parent(parent_id),
                                               selectors=list(selectors)))
        return entry.id

    def _editable(self, agent: AgentDefinition) -> None:
        if agent.state.leaving:
            raise IllegalTransitionError(f"agent {agent.name!r} is {agent.state.value}: its "
                                         "definition can no longer change")

    def promote(self, name: str, tier: str, *, actor: str, requested_by: str | None = None,
                policy_binding: str | None = None, reason: str = "") -> UpdateResult:
        """Ask for a higher tier (a mover: pending until recertified). The new tier needs a
        policy binding: given here, or already on the definition."""
        agent = self.get(name)
        target = parse_tier(tier)
        if target.rank <= agent.tier.rank:
            raise InvalidAgentError(f"{target.value} is not above the current tier "
                                    f"{agent.tier.value} (use update --tier to lower it)")
        bindings = {target.value: policy_binding} if policy_binding else {}
        return self.update(name, AgentPatch(tier=target.value, policy_bindings=bindings),
                           actor=actor, requested_by=requested_by, reason=reason)

    # --- recertification -----------------------------------------------------------------------

    def recertify(self, name: str, *, approver: str, actor: str, change_id: str | None = None,
                  reject: bool = False, reason: str = "") -> builtins.list[PendingChange]:
        """Approve (or reject) one pending change, or all of them. The approver holds the
        ``approver`` role and requested none of the changes approved (four eyes)."""
        actor, reason = _actor(actor), _reason(reason)
        person = self._approver(approver)
        agent = self.get(name)
        self._editable(agent)
        all_pending = self._agents.changes(name, pending_only=True)
        pending = all_pending
        if change_id is not None:
            pending = [c for c in all_pending if c.id == change_id]
            if not pending:
                raise ChangeNotFoundError(f"agent {name!r} has no pending change {change_id!r}")
        if not pending:
            raise NoPendingChangeError(f"agent {name!r} has no change pending recertification")
        now = self._clock.now()
        if not reject:
            for change in pending:
                if same_person(change.requested_by, person.user_name):
                    raise FourEyesError(
                        f"{person.user_name!r} requested change {change.id} ({change.kind.value})"
                        " and cannot also approve it")
        status = ChangeStatus.REJECTED if reject else ChangeStatus.APPROVED
        decided = [replace(c, status=status, decided_by=person.user_name, decided_at=now)
                   for c in pending]
        updated = agent
        events: builtins.list[EventDraft] = []
        for change in decided:
            if not reject:
                updated = self._apply(updated, change)
            events.append(_draft("change_rejected" if reject else "recertified", actor, reason,
                                 now, change_id=change.id, change=change.kind.value,
                                 payload=change.payload, approver=person.user_name,
                                 requested_by=change.requested_by))
        remaining = {c.id for c in all_pending} - {c.id for c in decided}
        target = updated.state
        if not remaining and updated.state is AgentState.PENDING_RECERTIFICATION:
            target = AgentState.ACTIVE
            events.append(_draft("recertification_complete", actor, reason, now,
                                 from_state=updated.state, to_state=target,
                                 approver=person.user_name))
        if updated.tools != agent.tools or updated.system_prompt_digest != (
                agent.system_prompt_digest) or updated.config != agent.config:
            updated = replace(updated, checksum=updated.computed_checksum())
        self._agents.save(
            replace(updated, state=target, updated_at=now,
                    state_changed_at=now if target != agent.state else agent.state_changed_at),
            expected_version=agent.version, events=events, changes=decided)
        return decided

    def _apply(self, agent: AgentDefinition, change: PendingChange) -> AgentDefinition:
        payload = change.payload
        if change.kind is ChangeKind.TOOL_ADD:
            return replace(agent, tools=validate_tools({*agent.tools, str(payload["tool"])}))
        if change.kind is ChangeKind.TIER_PROMOTE:
            tier = Tier(str(payload["tier"]))
            if tier.value not in agent.policy_bindings:
                raise PolicyBindingRequiredError(
                    f"change {change.id}: no policy binding for tier {tier.value}")
            return replace(agent, tier=tier)
        if change.kind is ChangeKind.MODEL_CHANGE:
            model = payload["model"]
            return replace(agent, model=ModelRef(model["provider"], model["name"],
                                                 model["version"]))
        return replace(agent, system_prompt_digest=payload["system_prompt_digest"],
                       config=payload["config"])

    # --- ownership ------------------------------------------------------------------------------

    def transfer(self, name: str, to: str, *, actor: str, reason: str = "") -> AgentDefinition:
        """Give the agent a new owner, who must attest within the policy's deadline."""
        actor, reason = _actor(actor), _reason(reason)
        agent = self.get(name)
        self._editable(agent)
        person = self._owner(to)
        if person.user_name == agent.owner:
            raise InvalidAgentError(f"{person.user_name!r} owns agent {name!r} already")
        now = self._clock.now()
        due = now + self._policy.transfer_deadline
        stored = self._agents.save(
            replace(agent, owner=person.user_name, transferred_at=now, attestation_due_at=due,
                    updated_at=now),
            expected_version=agent.version,
            events=[_draft("owner_transferred", actor, reason, now, previous_owner=agent.owner,
                           owner=person.user_name, attestation_due_at=due.isoformat())])
        self._resolve(stored, (FindingKind.OWNER_INACTIVE, FindingKind.OWNER_DELETED,
                               FindingKind.OWNER_MISSING), actor, "owner transferred")
        return self._agents.get(name) or stored

    def attest(self, name: str, owner: str, *, actor: str, reason: str = "") -> AgentDefinition:
        """The owner confirms the agent is theirs and still needed; lifts a narrowing."""
        actor, reason = _actor(actor), _reason(reason)
        agent = self.get(name)
        self._editable(agent)
        person = self._owner(owner)
        if person.user_name.casefold() != agent.owner.casefold():
            raise NotTheOwnerError(f"{person.user_name!r} is not the owner of agent {name!r} "
                                   f"({agent.owner!r} is)")
        now = self._clock.now()
        interval = self._policy.attestation_interval
        events = [_draft("attested", actor, reason, now, owner=person.user_name)]
        if agent.read_only:
            events.append(_draft("widened", actor, reason, now,
                                 detail="read-only narrowing lifted by the owner's attestation"))
        stored = self._agents.save(
            replace(agent, last_attested_by=person.user_name, last_attested_at=now,
                    attestation_due_at=now + interval if interval is not None else None,
                    transferred_at=None, read_only=False, updated_at=now),
            expected_version=agent.version, events=events)
        self._resolve(stored, (FindingKind.ATTESTATION_OVERDUE,), actor, "owner attested")
        return self._agents.get(name) or stored

    def _resolve(self, agent: AgentDefinition, kinds: Sequence[FindingKind], actor: str,
                 reason: str) -> None:
        closed = self._findings.resolve(agent.name, kinds, self._clock.now())
        if closed:
            record_findings(self._agents, agent.name, [
                _draft("finding_resolved", actor, reason, f.resolved_at or self._clock.now(),
                       finding_id=f.id, finding=f.kind.value) for f in closed])


def record_findings(agents: AgentStore, name: str, events: Sequence[EventDraft], *,
                    attempts: int = 5) -> AgentDefinition | None:
    """Append events to an agent's trail, retrying on concurrent writes (background tasks
    must not lose their record to a user's edit)."""
    for _ in range(attempts):
        agent = agents.get(name)
        if agent is None:
            return None
        try:
            return agents.save(replace(agent, updated_at=max(agent.updated_at,
                                                             events[-1].at)),
                               expected_version=agent.version, events=events)
        except AgentChangedError:
            continue
    raise AgentChangedError(f"agent {name!r} kept changing while its events were recorded")


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, ModelRef | SanitizationHook):
            out[key] = value.as_dict()
        elif isinstance(value, tuple):
            out[key] = [v.as_dict() if isinstance(v, SanitizationHook) else v for v in value]
        elif isinstance(value, Tier | Delegation):
            out[key] = value.value
        else:
            out[key] = value
    return out
