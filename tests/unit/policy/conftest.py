"""The product example's bundle, fixture people and agents over :class:`StaticFacts`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tabard.policy import (
    AgentFacts,
    DelegationMode,
    InstanceFacts,
    PolicyBundle,
    PolicyEngine,
    UserFacts,
    agent_of_instance,
    compile_bundle,
    read_bundle,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "policy" / "policies"
TD = "example.org"
ASSISTANT = f"spiffe://{TD}/agent/assistant/instance/01"
TOOLS = frozenset({"jira.create_issue", "jira.search", "github.create_pr", "github.read_file",
                   "scanner.run_scan", "deploy.release"})

EXTRA = {
    "more.cedar": """
@id("assistant-a2a-http")
permit (principal in Tabard::Agent::"assistant", action, resource)
when { resource is Tabard::A2aAgent || resource is Tabard::HttpRoute };

@id("people-a2a-http")
@obligation("read_only")
permit (principal is Tabard::User, action, resource)
when { resource is Tabard::A2aAgent || resource is Tabard::HttpRoute };

@id("background-agents")
permit (principal in Tabard::Agent::"nightly", action == Tabard::Action::"tools/call",
        resource in Tabard::ToolCategory::"jira");

@id("project-sec-only")
forbid (principal is Tabard::User, action == Tabard::Action::"tools/call",
        resource == Tabard::Tool::"jira.search")
when { context.arguments.contains("project=SECRET") };
""",
}


@dataclass
class Facts:
    """Mutable facts: tests change them, then tell the engine."""

    agents: dict[str, AgentFacts] = field(default_factory=dict)
    users: dict[str, UserFacts] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)
    reads: int = 0

    def agent(self, name: str) -> AgentFacts | None:
        self.reads += 1
        return self.agents.get(name)

    def instance(self, spiffe_id: str) -> InstanceFacts | None:
        found = agent_of_instance(spiffe_id)
        if found is None or found[1] not in self.agents:
            return None
        return InstanceFacts(spiffe_id, found[1], retired=spiffe_id in self.retired)

    def user(self, user_name: str) -> UserFacts | None:
        return self.users.get(user_name)


def instance(agent: str) -> str:
    return f"spiffe://{TD}/agent/{agent}/instance/01"


@pytest.fixture
def facts() -> Facts:
    return Facts(
        agents={
            "assistant": AgentFacts("assistant", "active", DelegationMode.HYBRID, TOOLS,
                                    pending_tools=frozenset({"jira.delete"})),
            "nightly": AgentFacts("nightly", "active", DelegationMode.AGENT_AS_PRINCIPAL,
                                  TOOLS),
            "billing-agent": AgentFacts("billing-agent", "active", DelegationMode.HYBRID,
                                        frozenset({"jira.search"})),
        },
        users={
            "alice": UserFacts("alice", True, frozenset({"engineering"})),
            "bob": UserFacts("bob", True, frozenset({"security"})),
            "rita": UserFacts("rita", True, frozenset({"engineering"}),
                              frozenset({"release-manager"})),
        })


def bundle() -> PolicyBundle:
    files = read_bundle(EXAMPLE).as_dict()
    files["catalog.yaml"] = files["catalog.yaml"].replace(
        "tools:\n", "tools:\n  jira.delete: {category: jira, mutating: true}\n")
    return PolicyBundle.of({**files, **EXTRA})


@pytest.fixture
def engine(facts: Facts) -> PolicyEngine:
    engine = PolicyEngine(facts, facts, trust_domain=TD)
    engine.load(compile_bundle(bundle()), 1)
    return engine
