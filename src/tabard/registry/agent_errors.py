"""Errors of agent definitions and their lifecycle: one class per rule, each with a stable
``code`` (the registry's entry and node errors are in :mod:`tabard.registry.errors`)."""

from __future__ import annotations

from tabard.errors import Conflict, Denied, Invalid, NotFound

__all__ = [
    "AgentChangedError",
    "AgentExistsError",
    "AgentNotActiveError",
    "AgentNotFoundError",
    "AgentRetiredError",
    "ChangeNotFoundError",
    "FourEyesError",
    "IllegalTransitionError",
    "InvalidAgentError",
    "InvalidOwnerError",
    "NoPendingChangeError",
    "NotAnApproverError",
    "NotTheOwnerError",
    "PolicyBindingRequiredError",
]


class InvalidAgentError(Invalid):
    """A field of an agent definition that breaks a rule; the message names the field."""

    code = "invalid_agent"


class InvalidOwnerError(Invalid):
    """An owner that is unknown, inactive, or not a person (a group, a shared mailbox, a
    service account): every agent answers to one named human."""

    code = "invalid_owner"


class PolicyBindingRequiredError(Invalid):
    """A tier without a policy binding: an agent never runs in a tier no policy covers."""

    code = "policy_binding_required"


class AgentNotFoundError(NotFound):
    code = "agent_not_found"


class ChangeNotFoundError(NotFound):
    code = "change_not_found"


class AgentExistsError(Conflict):
    """The name is taken, also by a retired agent: names (and so SPIFFE IDs) are never
    reused."""

    code = "agent_exists"


class IllegalTransitionError(Conflict):
    """A lifecycle command the agent's current state does not allow (ARCHITECTURE §5)."""

    code = "illegal_transition"


class AgentChangedError(Conflict):
    """Someone else changed the agent between this request's read and its write; retry."""

    code = "agent_changed_concurrently"


class NoPendingChangeError(Conflict):
    code = "no_pending_change"


class NotAnApproverError(Denied):
    """Recertification needs a directory user who holds the ``approver`` role."""

    code = "not_an_approver"


class FourEyesError(Denied):
    """The approver of a change is the person who requested it."""

    code = "four_eyes"


class NotTheOwnerError(Denied):
    """Only the agent's current owner can attest to it."""

    code = "not_the_owner"


class AgentNotActiveError(Denied):
    """A node asked for an identity of an agent whose definition is not active (registered,
    suspended): SVIDs are issued only while it is."""

    code = "agent_not_active"


class AgentRetiredError(Denied):
    """A node asked for an identity of a retiring or retired agent; the attempt is recorded
    as residual use."""

    code = "agent_retired"
