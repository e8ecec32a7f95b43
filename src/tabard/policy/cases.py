"""``tabard policy test``: decision cases in YAML, for teams that keep policies in their CI.

A case file names the policy directory (relative to the file), fixture people and agents,
and the cases::

    policies: ./policies
    trust_domain: example.org          # optional, default example.org
    users:
      alice: {groups: [engineering], roles: [], active: true}
    agents:
      assistant: {tools: [jira.create_issue], pending_tools: [], delegation: hybrid,
                  state: active, read_only: false, inbound_blocked: false}
    cases:
      - name: an engineer files a Jira issue
        agent: assistant               # an agent name, or a full instance SPIFFE ID
        user: alice
        action: tools/call
        resource: Tool::jira.create_issue
        context: {risk: 10}            # optional
        scopes: ["tools:jira.*"]       # optional, one per delegation hop
        expect: allow                  # allow | deny
        obligations: [redact]          # optional: the exact obligations expected

Offline the cases run on an engine of their own over the fixtures (no server needed); live,
the same requests go to a server's ``POST /api/v1/decisions`` and its own policies and facts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tabard.errors import Invalid, TabardError
from tabard.policy.bundle import compile_bundle, read_bundle
from tabard.policy.decision import Decision, DecisionRequest, Effect
from tabard.policy.engine import PolicyEngine
from tabard.policy.facts import AgentFacts, DelegationMode, StaticFacts, UserFacts

__all__ = ["Case", "CaseFileError", "CaseResult", "Suite", "load_suite", "local_engine",
           "run_suite"]


class CaseFileError(Invalid):
    code = "invalid_case_file"


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    request: DecisionRequest
    expect: Effect
    obligations: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Suite:
    path: Path
    policy_dir: Path | None
    trust_domain: str
    facts: StaticFacts
    cases: tuple[Case, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    decision: Decision | None
    error: str | None = None

    @property
    def passed(self) -> bool:
        if self.decision is None or self.decision.effect is not self.case.expect:
            return False
        wanted = self.case.obligations
        return wanted is None or wanted == {o.value for o in self.decision.obligations}


def _strings(where: str, value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CaseFileError(f"{where}: must be a list of strings")
    return frozenset(value)


def _mapping(where: str, value: object) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CaseFileError(f"{where}: must be a mapping")
    return value


def _agent(where: str, name: str, spec: Mapping[str, Any]) -> AgentFacts:
    try:
        return AgentFacts(
            name=name, state=str(spec.get("state", "active")),
            delegation=DelegationMode(spec.get("delegation", "hybrid")),
            tools=_strings(f"{where}.tools", spec.get("tools")),
            pending_tools=_strings(f"{where}.pending_tools", spec.get("pending_tools")),
            owner=str(spec.get("owner", "")), tier=str(spec.get("tier", "dev")),
            read_only=bool(spec.get("read_only", False)),
            inbound_blocked=bool(spec.get("inbound_blocked", False)))
    except ValueError:
        raise CaseFileError(f"{where}.delegation: must be hybrid, impersonation or "
                            "agent_as_principal") from None


def _case(where: str, spec: Mapping[str, Any], trust_domain: str) -> Case:
    for key in ("name", "agent", "action", "resource", "expect"):
        if not isinstance(spec.get(key), str):
            raise CaseFileError(f"{where}: {key} is required (a string)")
    agent = spec["agent"]
    if not agent.startswith("spiffe://"):
        agent = f"spiffe://{trust_domain}/agent/{agent}/instance/test"
    scopes = spec.get("scopes") or []
    if not isinstance(scopes, list):
        raise CaseFileError(f"{where}: scopes must be a list (one scope string per hop)")
    try:
        request = DecisionRequest.build(
            agent=agent, user=spec.get("user"), action=spec["action"],
            resource=spec["resource"], context=spec.get("context"), scopes=scopes)
        expect = Effect(spec["expect"])
    except ValueError:
        raise CaseFileError(f"{where}: expect must be allow or deny") from None
    except TabardError as exc:
        raise CaseFileError(f"{where}: {exc.message}") from None
    obligations = spec.get("obligations")
    return Case(spec["name"], request, expect,
                None if obligations is None else _strings(f"{where}.obligations", obligations))


def load_suite(path: Path) -> Suite:
    """Read and check a case file; :class:`CaseFileError` names the file and the place."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CaseFileError(f"{path}: cannot be read ({exc})") from None
    top = _mapping(str(path), document)
    trust_domain = str(top.get("trust_domain", "example.org"))
    policies = top.get("policies")
    policy_dir = (path.parent / policies).resolve() if isinstance(policies, str) else None
    users = [UserFacts(name, bool(_mapping(f"{path}: users.{name}", spec).get("active", True)),
                       _strings(f"{path}: users.{name}.groups",
                                _mapping("", spec).get("groups")),
                       _strings(f"{path}: users.{name}.roles", _mapping("", spec).get("roles")))
             for name, spec in _mapping(f"{path}: users", top.get("users")).items()]
    agents = [_agent(f"{path}: agents.{name}", name, _mapping(f"{path}: agents.{name}", spec))
              for name, spec in _mapping(f"{path}: agents", top.get("agents")).items()]
    raw_cases = top.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise CaseFileError(f"{path}: cases must be a non-empty list")
    cases = tuple(_case(f"{path}: cases[{i}]", _mapping(f"{path}: cases[{i}]", c), trust_domain)
                  for i, c in enumerate(raw_cases))
    return Suite(path, policy_dir, trust_domain, StaticFacts.of(agents, users), cases)


def local_engine(suite: Suite) -> PolicyEngine:
    """An engine over the suite's policy directory and fixtures."""
    if suite.policy_dir is None:
        raise CaseFileError(f"{suite.path}: 'policies' (the policy directory) is required to "
                            "run offline")
    engine = PolicyEngine(suite.facts, suite.facts, trust_domain=suite.trust_domain)
    engine.load(compile_bundle(read_bundle(suite.policy_dir)), 1)
    return engine


def run_suite(cases: Sequence[Case], decide: Callable[[DecisionRequest], Decision]
              ) -> list[CaseResult]:
    results: list[CaseResult] = []
    for case in cases:
        try:
            results.append(CaseResult(case, decide(case.request)))
        except TabardError as exc:
            results.append(CaseResult(case, None, exc.message))
    return results
