"""The Cedar schema every tabard policy is validated against, and the actions it names.

Cedar (https://docs.cedarpolicy.com/) decides each side of a blended decision; this module
holds the entity types and actions in Cedar schema syntax (namespace ``Tabard``), so a policy
that names an unknown type, attribute or action is refused before it is ever loaded.

Entity types: ``User`` and ``AgentInstance`` are the principals. A user is ``in`` every group
it belongs to (transitively, by group ``displayName``) and every role it holds; an instance is
``in`` its agent definition. ``Tool``, ``McpResource``, ``McpPrompt``, ``A2aAgent`` and
``HttpRoute`` are the resources, declared by a bundle's catalog.

The context is a closed, typed record: Cedar validation does not accept open records, so tool
arguments travel as ``context.arguments``, a set of ``"name=value"`` strings, one per
top-level argument (strings as they are, anything else as compact JSON):
``context.arguments.contains("project=SEC")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import cedarpy

from tabard.policy.scopes import OperationKind

__all__ = [
    "ACTIONS",
    "CEDAR_SCHEMA",
    "NAMESPACE",
    "ActionInfo",
    "ResourceType",
    "action_info",
    "schema",
]

NAMESPACE = "Tabard"


class ResourceType(StrEnum):
    """The resource entity types a decision can be about."""

    TOOL = "Tool"
    MCP_RESOURCE = "McpResource"
    MCP_PROMPT = "McpPrompt"
    A2A_AGENT = "A2aAgent"
    HTTP_ROUTE = "HttpRoute"


@dataclass(frozen=True, slots=True)
class ActionInfo:
    """An action: the resource type it applies to, the scope kind that grants it, and
    whether it changes something (refused under the ``read_only`` obligation; for
    ``tools/call`` the tool's own ``mutating`` attribute decides)."""

    name: str
    resource: ResourceType
    scope_kind: OperationKind
    mutating: bool
    group: str


_A2A = ("message/send", "message/stream", "tasks/get", "tasks/cancel", "tasks/resubscribe",
        "tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get")
_A2A_READS = frozenset({"tasks/get", "tasks/resubscribe", "tasks/pushNotificationConfig/get"})
_HTTP = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_HTTP_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

ACTIONS: dict[str, ActionInfo] = {
    "tools/call": ActionInfo("tools/call", ResourceType.TOOL, OperationKind.TOOLS, False, "mcp"),
    "resources/read": ActionInfo("resources/read", ResourceType.MCP_RESOURCE,
                                 OperationKind.RESOURCES, False, "mcp"),
    "prompts/get": ActionInfo("prompts/get", ResourceType.MCP_PROMPT, OperationKind.PROMPTS,
                              False, "mcp"),
    **{m: ActionInfo(m, ResourceType.A2A_AGENT, OperationKind.A2A, m not in _A2A_READS, "a2a")
       for m in _A2A},
    **{m: ActionInfo(m, ResourceType.HTTP_ROUTE, OperationKind.HTTP, m not in _HTTP_SAFE,
                     "http") for m in _HTTP},
}
"""Every action a decision may name, by its wire name."""


def action_info(name: str) -> ActionInfo | None:
    return ACTIONS.get(name)


def _action_lines() -> str:
    lines = ['  action "mcp";', '  action "a2a";', '  action "http";']
    for info in ACTIONS.values():
        lines.append(
            f'  action "{info.name}" in ["{info.group}"] appliesTo {{\n'
            f"    principal: [User, AgentInstance], resource: [{info.resource.value}],\n"
            f"    context: RequestContext\n  }};")
    return "\n".join(lines)


CEDAR_SCHEMA = f"""\
namespace {NAMESPACE} {{
  entity Role;
  entity Group in [Group, Role];
  entity User in [Group, Role] {{ active: Bool }};
  entity Agent {{ owner: String, tier: String, delegation: String, read_only: Bool }};
  entity AgentInstance in [Agent];
  entity ToolCategory;
  entity McpServer;
  entity Tool in [ToolCategory, McpServer] {{ mutating: Bool, risk: Long }};
  entity McpResource in [McpServer];
  entity McpPrompt in [McpServer];
  entity A2aAgent;
  entity HttpRoute {{ path: String }};
  type RequestContext = {{
    risk: Long,
    delegation: String,
    chain_depth: Long,
    user: String,
    agent: String,
    agent_tier: String,
    instance: String,
    path: String,
    arguments: Set<String>,
  }};
{_action_lines()}
}}
"""
"""The schema in Cedar schema syntax; ``tabard policy schema`` prints it."""


@cache
def schema() -> cedarpy.Schema:
    """The parsed schema handle (parsed once per process)."""
    return cedarpy.Schema.from_str(CEDAR_SCHEMA)
