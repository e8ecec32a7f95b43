"""Agent definitions: the blueprint every instance of an agent runs under (ARCHITECTURE §4).

A definition names the accountable human (the owner), what the agent is for, which model it
runs, where, in which tier, with which tools, and the digests that pin its code and prompt.
Its SPIFFE IDs are ``spiffe://<td>/agent/<name>/instance/<id>``, one per process.

The **agent checksum** is SHA-256 (hex) over the RFC 8785 canonical JSON
(https://www.rfc-editor.org/rfc/rfc8785) of
``{"config": …, "system_prompt_digest": …, "tools": [sorted tool names]}``: it changes exactly
when one of those changes, whatever the key order or whitespace of the config given.

Everything here is a value: validated on construction, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import rfc8785

from tabard.registry.agent_errors import InvalidAgentError
from tabard.registry.entries import INSTANCE_PLACEHOLDER, IdTemplate

__all__ = [
    "AGENT_NAME",
    "MAX_CONFIG_BYTES",
    "MAX_TOOLS",
    "AgentDefinition",
    "AgentEvent",
    "AgentQuery",
    "AgentSpec",
    "AgentState",
    "ChangeKind",
    "ChangeStatus",
    "Delegation",
    "EventDraft",
    "Finding",
    "FindingKind",
    "HookKind",
    "HookOutcome",
    "IdentityUse",
    "ModelRef",
    "PendingChange",
    "ResidualUse",
    "RetirementStep",
    "SanitizationHook",
    "StepName",
    "StepStatus",
    "Tier",
    "agent_checksum",
    "agent_of",
    "normalize_digest",
    "parse_tier",
    "validate_binding",
    "validate_config",
    "validate_hooks",
    "validate_name",
    "validate_tools",
]

AGENT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MAX_TOOLS = 256
MAX_HOOKS = 16
MAX_CONFIG_BYTES = 64 * 1024
_TOOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}")
_BINDING = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
_HOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DIGEST = re.compile(r"(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})")
_PRINTABLE = re.compile(r"[^\x00-\x08\x0b-\x1f\x7f]*")


class AgentState(StrEnum):
    """Lifecycle states (ARCHITECTURE §5); transitions are in :mod:`tabard.registry.lifecycle`."""

    REGISTERED = "registered"
    ACTIVE = "active"
    PENDING_RECERTIFICATION = "pending_recertification"
    SUSPENDED = "suspended"
    RETIRING = "retiring"
    RETIRED = "retired"

    @property
    def issues_identities(self) -> bool:
        """SVIDs and instance registrations only while active; a pending change keeps the
        old grants working, so ``pending_recertification`` still does."""
        return self in (AgentState.ACTIVE, AgentState.PENDING_RECERTIFICATION)

    @property
    def leaving(self) -> bool:
        return self in (AgentState.RETIRING, AgentState.RETIRED)


class Tier(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"

    @property
    def rank(self) -> int:
        return _TIER_ORDER.index(self)


_TIER_ORDER = (Tier.DEV, Tier.STAGING, Tier.PROD)


class Delegation(StrEnum):
    """How the agent acts for people: ``hybrid`` (its own identity plus the user's, the
    default), ``impersonation`` (the user's identity only) or ``agent_as_principal`` (its own
    identity only)."""

    HYBRID = "hybrid"
    IMPERSONATION = "impersonation"
    AGENT_AS_PRINCIPAL = "agent_as_principal"


class ChangeKind(StrEnum):
    """Mover events that widen what an agent can do, so they wait for recertification."""

    TOOL_ADD = "tool_add"
    TIER_PROMOTE = "tier_promote"
    MODEL_CHANGE = "model_change"
    CHECKSUM_CHANGE = "checksum_change"


class ChangeStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


class FindingKind(StrEnum):
    """Why an agent may be an orphan."""

    OWNER_INACTIVE = "owner_inactive"
    OWNER_DELETED = "owner_deleted"
    OWNER_MISSING = "owner_missing"
    ATTESTATION_OVERDUE = "attestation_overdue"
    NO_RECENT_INSTANCE = "no_recent_instance"


class HookKind(StrEnum):
    COMMAND = "command"
    WEBHOOK = "webhook"


class StepName(StrEnum):
    """The retirement procedure, in order (ARCHITECTURE §5, leaver)."""

    REVOKE_CREDENTIALS = "revoke_credentials"
    REMOVE_GRANTS = "remove_grants"
    BLOCK_INBOUND = "block_inbound"
    SANITIZE_MEMORY = "sanitize_memory"
    SEAL_TRAIL = "seal_trail"
    WATCH_RESIDUAL = "watch_residual"

    @property
    def number(self) -> int:
        return list(StepName).index(self) + 1


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def _text(field_name: str, value: object, *, max_length: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidAgentError(f"{field_name} must be a string")
    stripped = value.strip()
    if required and not stripped:
        raise InvalidAgentError(f"{field_name} is required")
    if len(stripped) > max_length or not _PRINTABLE.fullmatch(stripped):
        raise InvalidAgentError(f"{field_name} must be at most {max_length} printable characters")
    return stripped


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not AGENT_NAME.fullmatch(name):
        raise InvalidAgentError(
            f"agent name {name!r} must be 1-63 characters of a-z, 0-9 and '-', not starting "
            "with '-'"
        )
    return name


def validate_tools(tools: Iterable[object]) -> tuple[str, ...]:
    """Distinct tool names, sorted."""
    if isinstance(tools, str):
        raise InvalidAgentError("tools must be a list")
    out: set[str] = set()
    for tool in tools:
        if not isinstance(tool, str) or not _TOOL.fullmatch(tool):
            raise InvalidAgentError(
                f"tool {tool!r} must be 1-128 characters of letters, digits and ._:/@-"
            )
        out.add(tool)
    if len(out) > MAX_TOOLS:
        raise InvalidAgentError(f"an agent declares at most {MAX_TOOLS} tools")
    return tuple(sorted(out))


def normalize_digest(field_name: str, value: object) -> str:
    """``sha256:<hex>`` (or sha384/sha512); a bare 64-hex value is taken as SHA-256."""
    if not isinstance(value, str):
        raise InvalidAgentError(f"{field_name} must be a string")
    lowered = value.strip().lower()
    if re.fullmatch(r"[0-9a-f]{64}", lowered):
        lowered = "sha256:" + lowered
    if not _DIGEST.fullmatch(lowered):
        raise InvalidAgentError(
            f"{field_name} must be sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex>"
        )
    return lowered


def validate_config(config: object) -> dict[str, Any] | None:
    """A JSON object that RFC 8785 can canonicalise (finite numbers, string keys)."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise InvalidAgentError("config must be a JSON object")
    try:
        canonical = rfc8785.dumps(config)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidAgentError(f"config cannot be canonicalised (RFC 8785): {exc}") from None
    if len(canonical) > MAX_CONFIG_BYTES:
        raise InvalidAgentError(f"config is limited to {MAX_CONFIG_BYTES} bytes")
    value: dict[str, Any] = json.loads(canonical)
    return value


def validate_binding(tier: object, policy_set: object) -> tuple[Tier, str]:
    try:
        parsed = Tier(str(tier))
    except ValueError:
        raise InvalidAgentError(f"tier {tier!r} must be one of dev, staging, prod") from None
    if not isinstance(policy_set, str) or not _BINDING.fullmatch(policy_set):
        raise InvalidAgentError(
            f"policy binding {policy_set!r} must be 1-128 characters of letters, digits and "
            "._:/-"
        )
    return parsed, policy_set


def parse_tier(value: object) -> Tier:
    try:
        return Tier(str(value))
    except ValueError:
        raise InvalidAgentError(f"tier {value!r} must be one of dev, staging, prod") from None


def agent_checksum(system_prompt_digest: str | None, tools: Iterable[str],
                   config: Mapping[str, Any] | None) -> str:
    """SHA-256 hex over the RFC 8785 form of the prompt digest, sorted tools and config."""
    document = {
        "config": dict(config) if config is not None else None,
        "system_prompt_digest": system_prompt_digest,
        "tools": sorted(tools),
    }
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def agent_of(spiffe_id: IdTemplate | str) -> str | None:
    """The agent an entry's SPIFFE ID belongs to: ``name`` for ``/agent/<name>/...``."""
    template = spiffe_id if isinstance(spiffe_id, IdTemplate) else IdTemplate(spiffe_id)
    segments = template.segments
    if len(segments) >= 2 and segments[0] == "agent" and segments[1] != INSTANCE_PLACEHOLDER:
        return segments[1]
    return None


@dataclass(frozen=True, slots=True)
class ModelRef:
    provider: str
    name: str
    version: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "provider",
                           _text("model provider", self.provider, max_length=128))
        object.__setattr__(self, "name", _text("model name", self.name, max_length=128))
        object.__setattr__(self, "version",
                           _text("model version", self.version, max_length=128))

    def as_dict(self) -> dict[str, str]:
        return {"provider": self.provider, "name": self.name, "version": self.version}


@dataclass(frozen=True, slots=True)
class SanitizationHook:
    """A memory-sanitisation hook run at retirement: ``command`` names an executable in the
    server's hooks directory (the API never sets a command line), ``webhook`` an http(s) URL
    that gets a JSON POST."""

    kind: HookKind
    target: str

    def __post_init__(self) -> None:
        try:
            kind = HookKind(self.kind)
        except ValueError:
            raise InvalidAgentError(f"hook kind {self.kind!r} must be command or webhook"
                                    ) from None
        object.__setattr__(self, "kind", kind)
        if kind is HookKind.COMMAND:
            if not isinstance(self.target, str) or not _HOOK_NAME.fullmatch(self.target):
                raise InvalidAgentError(
                    f"command hook {self.target!r} must name a file of the hooks directory "
                    "(1-64 characters of letters, digits and ._-)"
                )
        else:
            if not isinstance(self.target, str) or len(self.target) > 2048:
                raise InvalidAgentError("webhook URL must be at most 2048 characters")
            parts = urlsplit(self.target)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidAgentError(f"webhook {self.target!r} must be an http(s) URL")
            if parts.username or parts.password:
                raise InvalidAgentError("webhook URLs may not carry credentials")

    @property
    def label(self) -> str:
        return f"{self.kind.value}:{self.target}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "target": self.target}

    @classmethod
    def parse(cls, value: str) -> SanitizationHook:
        """``command:NAME`` or ``webhook:URL`` (a bare URL is a webhook, a bare name a
        command)."""
        if value.startswith(("http://", "https://")):
            return cls(HookKind.WEBHOOK, value)
        kind, sep, target = value.partition(":")
        if sep and kind in ("command", "webhook"):
            return cls(HookKind(kind), target)
        return cls(HookKind.COMMAND, value)


@dataclass(frozen=True, slots=True)
class HookOutcome:
    """What a hook run gave: success, and a short description (exit status, HTTP status,
    the start of its output) that is recorded in the retirement step."""

    ok: bool
    detail: str


def validate_hooks(hooks: Sequence[SanitizationHook]) -> tuple[SanitizationHook, ...]:
    if len(hooks) > MAX_HOOKS:
        raise InvalidAgentError(f"an agent has at most {MAX_HOOKS} sanitisation hooks")
    if len(set(hooks)) != len(hooks):
        raise InvalidAgentError("sanitisation hooks must be distinct")
    return tuple(hooks)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSpec:
    """What an admin registers: raw values, validated by the service."""

    name: str
    owner: str
    purpose: str
    model: ModelRef
    hosting: str
    tier: str
    tools: Sequence[str]
    image_digest: str
    selectors: Sequence[str]
    policy_bindings: Mapping[str, str]
    system_prompt_digest: str | None = None
    config: dict[str, Any] | None = None
    delegation: str = Delegation.HYBRID.value
    parent_id: str | None = None
    sanitization_hooks: Sequence[SanitizationHook] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDefinition:
    """A stored agent. ``tools``, ``tier``, ``model`` and ``checksum`` are the *approved*
    ones: a pending change is a :class:`PendingChange` until an approver recertifies it.
    ``version`` grows with every write (optimistic concurrency)."""

    name: str
    owner: str
    purpose: str
    model: ModelRef
    hosting: str
    tier: Tier
    tools: tuple[str, ...]
    image_digest: str
    system_prompt_digest: str | None
    config: dict[str, Any] | None
    checksum: str
    policy_bindings: Mapping[str, str]
    delegation: Delegation
    entry_id: str | None
    sanitization_hooks: tuple[SanitizationHook, ...]
    state: AgentState
    state_changed_at: datetime
    read_only: bool = False
    inbound_blocked: bool = False
    last_attested_by: str | None = None
    last_attested_at: datetime | None = None
    attestation_due_at: datetime | None = None
    transferred_at: datetime | None = None
    seal: str | None = None
    sealed_through: int | None = None
    sealed_at: datetime | None = None
    version: int = 1
    created_at: datetime
    updated_at: datetime

    @property
    def policy_binding(self) -> str | None:
        """The policy set of the current tier (what the gateway evaluates against)."""
        return self.policy_bindings.get(self.tier.value)

    def computed_checksum(self) -> str:
        return agent_checksum(self.system_prompt_digest, self.tools, self.config)


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingChange:
    """One mover event waiting for recertification; ``payload`` holds the new value
    (``{"tool"}``, ``{"tier"}``, ``{"model"}``, or ``{"system_prompt_digest", "config",
    "checksum"}``)."""

    id: str
    agent: str
    kind: ChangeKind
    payload: dict[str, Any]
    requested_by: str
    requested_at: datetime
    status: ChangeStatus = ChangeStatus.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventDraft:
    """A lifecycle event before the store numbers it."""

    kind: str
    actor: str
    reason: str
    at: datetime
    from_state: AgentState | None = None
    to_state: AgentState | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentEvent:
    """A stored lifecycle event: ``seq`` counts from 1 per agent, without gaps."""

    agent: str
    seq: int
    kind: str
    actor: str
    reason: str
    at: datetime
    from_state: AgentState | None
    to_state: AgentState | None
    details: dict[str, Any]

    def canonical(self) -> bytes:
        """RFC 8785 form, the unit the trail's hash chain covers."""
        return rfc8785.dumps({
            "agent": self.agent, "seq": self.seq, "kind": self.kind, "actor": self.actor,
            "reason": self.reason, "at": self.at.isoformat(),
            "from_state": self.from_state.value if self.from_state else None,
            "to_state": self.to_state.value if self.to_state else None,
            "details": self.details,
        })


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """Something that makes an agent a possible orphan. At most one open finding per agent
    and kind; ``action`` is what the policy said when it was opened (flag, suspend)."""

    id: str
    agent: str
    kind: FindingKind
    detail: str
    action: str
    opened_at: datetime
    acted_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetirementStep:
    agent: str
    name: StepName
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def number(self) -> int:
        return self.name.number


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityUse:
    """A node asking for an identity of an agent: an instance or an SVID."""

    agent: str
    kind: str  # "instance_registration", "x509_svid", "jwt_svid"
    node_id: str
    entry_id: str
    spiffe_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResidualUse:
    """Refused attempts to use a retired identity, counted per agent, kind, node and ID."""

    agent: str
    kind: str
    node_id: str | None
    spiffe_id: str
    entry_id: str | None
    first_at: datetime
    last_at: datetime
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentQuery:
    owner: str | None = None
    state: AgentState | None = None
    states: tuple[AgentState, ...] = ()
    limit: int = 10_000

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 100_000:
            raise InvalidAgentError("limit must be between 1 and 100000")
