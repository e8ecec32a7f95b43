"""The blended decision: agent ∩ user ∩ every hop of the delegation chain, on Cedar.

Rules, in order (the first that refuses decides; ARCHITECTURE §1, §6):

1. The agent instance, its agent definition and the user (when one is named) must be known
   (fail closed); the agent must be ``active`` or ``pending_recertification``; the user
   active.
2. The delegation mode comes from the agent definition: ``hybrid`` needs both the agent side
   (principal ``AgentInstance``) and the user side (principal ``User``) to allow;
   ``impersonation`` only the user side; ``agent_as_principal`` only the agent side. Only
   ``agent_as_principal`` may act with no user.
3. The resource must be in the bundle's catalog. ``tools/call`` of a tool the agent has not
   declared, or whose addition waits for recertification, is refused; so is an A2A call to
   an agent whose inbound calls are blocked.
4. The operation must lie inside every hop's scope (:meth:`Scope.allows`).
5. Cedar decides the sides that count, in one ``is_authorized_batch`` call; a policy that
   fails to evaluate denies (fail closed).
6. Obligations: ``@obligation`` annotations of the permit policies that decided, plus
   ``read_only`` when the agent is flagged read-only; ``read_only`` with a mutating
   operation (a tool marked ``mutating``, an HTTP method other than GET/HEAD/OPTIONS, an A2A
   method that sends or changes) denies. ``require_approval`` when the risk (the context's or
   the tool's, the larger) exceeds the lowest ``@approval_above`` of the deciding permits.

7. The kill switch (``tabard.signals``, through the optional :class:`KillFactsSource`): a
   suspended agent, instance, user or node denies; a narrowing adds ``read_only``, denies
   tools of blocked categories, and lowers the ``require_approval`` threshold. Every kill
   signal bumps the facts epoch (the composition root subscribes :meth:`facts_changed`).

Decisions are cached (LRU) under the policy epoch, the facts epoch and the request itself.
The facts epoch is bumped by :meth:`PolicyEngine.facts_changed`, which the composition root
calls on every change of an agent or of the directory, so a change is never answered from
the cache. Denials for an unknown agent, instance or user are not cached (a registration
that follows must be seen at once). Per (instance, user) Cedar entity sets are cached the
same way, so an uncached decision costs one Cedar batch.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import cedarpy

from tabard.policy.bundle import CompiledBundle, PolicyBundle, compile_bundle
from tabard.policy.decision import Decision, DecisionRequest, Effect, Obligation
from tabard.policy.facts import (
    ACTING_STATES,
    AgentFacts,
    AgentFactsSource,
    DelegationMode,
    KillFacts,
    KillFactsSource,
    UserFacts,
    UserFactsSource,
    agent_of_instance,
)
from tabard.policy.schema import NAMESPACE, ActionInfo, ResourceType, action_info
from tabard.policy.scopes import operation_token

__all__ = ["PolicyEngine"]

_ACTION = f"{NAMESPACE}::Action"
_AGENT_SIDE, _USER_SIDE = "agent", "user"


@dataclass(frozen=True, slots=True)
class _Loaded:
    compiled: CompiledBundle
    epoch: int


class _Lru:
    """A bounded mapping, least recently used out first. Reads take no lock: each
    ``OrderedDict`` operation is atomic under the GIL, and a race only costs a miss."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        value = self._items.get(key)
        if value is not None:
            try:  # noqa: SIM105 (contextlib.suppress costs more on the hot path)
                self._items.move_to_end(key)
            except KeyError:
                pass
        return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def _uid(kind: str, name: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{kind}", "id": name}


class PolicyEngine:
    def __init__(self, agents: AgentFactsSource, users: UserFactsSource, *,
                 trust_domain: str | None = None, cache_size: int = 10_000,
                 entity_cache_size: int = 1_024, kill: KillFactsSource | None = None) -> None:
        self._agents = agents
        self._kill = kill
        self._users = users
        self._trust_domain = trust_domain
        self._loaded = _Loaded(compile_bundle(PolicyBundle.of({})), 0)
        self._facts_epoch = 0
        self._epoch_lock = threading.Lock()
        self._decisions = _Lru(cache_size)
        self._entity_sets = _Lru(entity_cache_size)

    # --- state ---------------------------------------------------------------------------

    @property
    def policy_epoch(self) -> int:
        return self._loaded.epoch

    @property
    def facts_epoch(self) -> int:
        return self._facts_epoch

    @property
    def compiled(self) -> CompiledBundle:
        return self._loaded.compiled

    def load(self, compiled: CompiledBundle, epoch: int) -> None:
        """Decide with ``compiled`` from now on, as policy epoch ``epoch``."""
        self._loaded = _Loaded(compiled, epoch)
        self._decisions.clear()
        self._entity_sets.clear()

    def facts_changed(self, *_: object) -> None:
        """Something an agent or a person is changed: no earlier decision may be reused."""
        with self._epoch_lock:
            self._facts_epoch += 1
        self._decisions.clear()
        self._entity_sets.clear()

    # --- deciding ------------------------------------------------------------------------

    def decide(self, request: DecisionRequest) -> Decision:
        loaded, facts_epoch = self._loaded, self._facts_epoch
        key = (loaded.epoch, facts_epoch, request)
        hit: Decision | None = self._decisions.get(key)
        if hit is not None:
            return hit
        decision, cacheable = self._decide(loaded, facts_epoch, request)
        if cacheable:
            d = decision  # the constructor is several times cheaper than dataclasses.replace
            self._decisions.put(key, Decision(d.effect, d.obligations, d.reasons,
                                              d.agent_policies, d.user_policies, d.delegation,
                                              d.policy_epoch, cached=True))
        return decision

    def _decide(self, loaded: _Loaded, facts_epoch: int,
                request: DecisionRequest) -> tuple[Decision, bool]:
        epoch = loaded.epoch

        def deny(reason: str, *, mode: str | None = None, cacheable: bool = True
                 ) -> tuple[Decision, bool]:
            return Decision(Effect.DENY, (), (reason,), (), (), mode, epoch), cacheable

        found = agent_of_instance(request.agent)
        if found is None:
            return deny(f"{request.agent!r} is not an agent instance SPIFFE ID "
                        "(spiffe://<trust domain>/agent/<name>/instance/<id>)")
        spiffe_id, name = found
        if self._trust_domain and spiffe_id.trust_domain.name != self._trust_domain:
            return deny(f"{request.agent} is not of trust domain {self._trust_domain}")
        instance = self._agents.instance(request.agent)
        if instance is None or instance.agent != name:
            return deny(f"unknown agent instance {request.agent}", cacheable=False)
        agent = self._agents.agent(name)
        if agent is None:
            return deny(f"unknown agent {name!r}", cacheable=False)
        mode = agent.delegation.value
        if instance.retired:
            return deny(f"agent instance {request.agent} is retired", mode=mode)
        if agent.state not in ACTING_STATES:
            return deny(f"agent {name!r} is {agent.state}", mode=mode)
        user: UserFacts | None = None
        if request.user is not None:
            user = self._users.user(request.user)
            if user is None:
                return deny(f"unknown user {request.user!r}", mode=mode, cacheable=False)
            if not user.active:
                return deny(f"user {user.user_name!r} is not active", mode=mode)
        elif agent.delegation is not DelegationMode.AGENT_AS_PRINCIPAL:
            return deny(f"agent {name!r} acts in {mode} mode, which needs a user", mode=mode)
        kill = (self._kill.restriction(agent=name, instance=request.agent,
                                       user=user.user_name if user else None,
                                       node=instance.node)
                if self._kill is not None else None)
        if kill is not None and kill.suspended is not None:
            return deny(kill.suspended, mode=mode)

        info = action_info(request.action)
        assert info is not None  # DecisionRequest checked it
        resource = request.resource
        catalog = loaded.compiled.catalog
        if not catalog.has(resource.type, resource.id):
            return deny(f"{resource} is not in the policy catalog", mode=mode)
        if info.resource is ResourceType.TOOL and resource.id not in agent.tools:
            if resource.id in agent.pending_tools:
                return deny(f"tool {resource.id!r} is pending recertification for agent "
                            f"{name!r}", mode=mode)
            return deny(f"tool {resource.id!r} is not declared by agent {name!r}", mode=mode)
        if kill is not None and kill.blocked_categories and info.resource is ResourceType.TOOL:
            tool_info = catalog.tools.get(resource.id)
            if tool_info is not None and tool_info.category in kill.blocked_categories:
                return deny(f"kill switch: tool category {tool_info.category!r} is blocked "
                            f"for this request", mode=mode)
        if info.resource is ResourceType.A2A_AGENT:
            target = self._agents.agent(resource.id)
            if target is not None and target.inbound_blocked:
                return deny(f"agent {resource.id!r} accepts no inbound calls", mode=mode)

        token = operation_token(info.scope_kind, self._operation(info, request, catalog))
        for number, hop in enumerate(request.chain, start=1):
            if not hop.scope.allows(token):
                return deny(f"{token} lies outside the scope delegated at hop {number} "
                            f"({hop.actor})", mode=mode)
        return self._cedar(loaded, facts_epoch, request, info, agent, user, kill), True

    @staticmethod
    def _operation(info: ActionInfo, request: DecisionRequest, catalog: Any) -> str:
        if info.resource is ResourceType.HTTP_ROUTE:
            path = request.context.path or catalog.http_routes[request.resource.id]
            return f"{request.action}:{path}"
        return request.resource.id

    def _entities(self, loaded: _Loaded, facts_epoch: int, instance: str, agent: AgentFacts,
                  user: UserFacts | None) -> cedarpy.Entities:
        key = (loaded.epoch, facts_epoch, instance, user.user_name if user else None)
        cached: cedarpy.Entities | None = self._entity_sets.get(key)
        if cached is not None:
            return cached
        delta: list[dict[str, Any]] = [
            {"uid": _uid("Agent", agent.name), "parents": [],
             "attrs": {"owner": agent.owner, "tier": agent.tier,
                       "delegation": agent.delegation.value, "read_only": agent.read_only}},
            {"uid": _uid("AgentInstance", instance), "attrs": {},
             "parents": [_uid("Agent", agent.name)]},
        ]
        if user is not None:
            parents = [_uid("Group", g) for g in sorted(user.groups)]
            parents += [_uid("Role", r) for r in sorted(user.roles)]
            delta.append({"uid": _uid("User", user.user_name), "parents": parents,
                          "attrs": {"active": user.active}})
        entities = loaded.compiled.entities.with_added_json_str(json.dumps(delta))
        self._entity_sets.put(key, entities)
        return entities

    def _cedar(self, loaded: _Loaded, facts_epoch: int, request: DecisionRequest,
               info: ActionInfo, agent: AgentFacts, user: UserFacts | None,
               kill: KillFacts | None = None) -> Decision:
        compiled, mode = loaded.compiled, agent.delegation
        sides: list[tuple[str, dict[str, str]]] = []
        if mode in (DelegationMode.HYBRID, DelegationMode.AGENT_AS_PRINCIPAL):
            sides.append((_AGENT_SIDE, _uid("AgentInstance", request.agent)))
        if user is not None and mode in (DelegationMode.HYBRID, DelegationMode.IMPERSONATION):
            sides.append((_USER_SIDE, _uid("User", user.user_name)))
        # serialised once for both sides (cedarpy passes a string context through)
        context = json.dumps({
            "risk": request.context.risk, "delegation": mode.value,
            "chain_depth": len(request.chain), "user": user.user_name if user else "",
            "agent": agent.name, "agent_tier": agent.tier, "instance": request.agent,
            "path": request.context.path or "", "arguments": sorted(request.context.arguments),
        })
        action = {"type": _ACTION, "id": request.action}
        resource = _uid(request.resource.type.value, request.resource.id)
        results = cedarpy.is_authorized_batch(
            [{"principal": p, "action": action, "resource": resource, "context": context}
             for _, p in sides],
            compiled.policy_set,
            self._entities(loaded, facts_epoch, request.agent, agent, user))

        reasons: list[str] = []
        ids: dict[str, tuple[str, ...]] = {_AGENT_SIDE: (), _USER_SIDE: ()}
        # no side evaluated can never allow (evaluate() refuses that case before, this is
        # defence in depth)
        allowed = bool(sides)
        obligations: set[Obligation] = set()
        threshold: tuple[int, str] | None = None
        for (side, principal), result in zip(sides, results, strict=True):
            diagnostics = result.diagnostics
            deciding = tuple(sorted(diagnostics.reasons))
            ids[side] = deciding
            if diagnostics.errors:
                allowed = False
                reasons.append(f"{side} side: {len(diagnostics.errors)} policy "
                               "evaluation error(s); denied (fail closed)")
            elif not result.allowed:
                allowed = False
                who = f"{principal['type'].removeprefix(NAMESPACE + '::')} {principal['id']}"
                reasons.append(f"{side} side: forbidden by {', '.join(deciding)}" if deciding
                               else f"{side} side: no policy permits {who} to "
                                    f"{request.action} {request.resource}")
            else:
                reasons.append(f"{side} side: permitted by {', '.join(deciding)}")
                for pid in deciding:
                    policy = compiled.policies.get(pid)
                    if policy is None:
                        continue
                    obligations.update(Obligation(o) for o in policy.obligations)
                    if policy.approval_above is not None and (
                            threshold is None or policy.approval_above < threshold[0]):
                        threshold = (policy.approval_above, pid)
        if mode is not DelegationMode.HYBRID:
            skipped = _USER_SIDE if mode is DelegationMode.AGENT_AS_PRINCIPAL else _AGENT_SIDE
            reasons.append(f"{skipped} side not evaluated ({mode.value} mode)")
        if allowed and request.chain:
            reasons.append(f"inside the scope of all {len(request.chain)} delegation hop(s)")

        tool = (compiled.catalog.tools.get(request.resource.id)
                if info.resource is ResourceType.TOOL else None)
        if agent.read_only:
            obligations.add(Obligation.READ_ONLY)
            if allowed:
                reasons.append(f"agent {agent.name!r} is flagged read-only")
        if kill is not None and kill.read_only:
            obligations.add(Obligation.READ_ONLY)
            if allowed:
                reasons.append("kill switch: narrowed to read-only")
        if kill is not None and kill.approval_above is not None and (
                threshold is None or kill.approval_above < threshold[0]):
            threshold = (kill.approval_above, "kill switch")
        mutating = tool.mutating if tool is not None else info.mutating
        if allowed and Obligation.READ_ONLY in obligations and mutating:
            allowed = False
            reasons.append(f"read-only: {request.action} {request.resource} would change "
                           "something")
        if allowed and threshold is not None:
            risk = max(request.context.risk, tool.risk if tool is not None else 0)
            if risk > threshold[0]:
                obligations.add(Obligation.REQUIRE_APPROVAL)
                reasons.append(f"risk {risk} exceeds {threshold[0]} ({_source(threshold[1])}): "
                               "needs a human's approval")
        return Decision(
            Effect.ALLOW if allowed else Effect.DENY,
            tuple(sorted(obligations)) if allowed else (),
            tuple(reasons), ids[_AGENT_SIDE], ids[_USER_SIDE], mode.value, loaded.epoch)


def _source(name: str) -> str:
    return name if name == "kill switch" else f"policy {name}"
