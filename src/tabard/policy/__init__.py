"""Blended authorization: Cedar policies over agent, user and delegation chain (ARCHITECTURE §3).

:mod:`.schema` holds the Cedar schema and actions, :mod:`.bundle` policy bundles (Cedar files
plus a catalog) and their validation, :mod:`.decision` the request and decision values,
:mod:`.facts` the ports to the registry and the directory, :mod:`.engine` the blended decision
and its cache, :mod:`.service` policy epochs, :mod:`.cases` the ``tabard policy test`` runner,
:mod:`.scopes` OAuth scopes as operations.
"""

from tabard.policy.bundle import (
    CATALOG_NAMES,
    Catalog,
    CompiledBundle,
    CompiledPolicy,
    PolicyBundle,
    ToolSpec,
    compile_bundle,
    read_bundle,
)
from tabard.policy.decision import (
    Decision,
    DecisionRequest,
    Effect,
    Hop,
    Obligation,
    RequestContext,
    ResourceRef,
)
from tabard.policy.engine import PolicyEngine
from tabard.policy.errors import (
    InvalidDecisionRequestError,
    PolicyBundleError,
    PolicyEpochConflictError,
)
from tabard.policy.facts import (
    AgentFacts,
    AgentFactsSource,
    DelegationMode,
    InstanceFacts,
    KillFacts,
    KillFactsSource,
    StaticFacts,
    UserFacts,
    UserFactsSource,
    agent_of_instance,
)
from tabard.policy.schema import ACTIONS, CEDAR_SCHEMA, ResourceType
from tabard.policy.scopes import MAX_SCOPE_TOKENS, OperationKind, Scope, ScopeError, operation_token
from tabard.policy.service import (
    AppliedPolicies,
    PolicyEpoch,
    PolicyService,
    PolicyStore,
    StoredPolicies,
)

__all__ = [
    "ACTIONS",
    "CATALOG_NAMES",
    "CEDAR_SCHEMA",
    "MAX_SCOPE_TOKENS",
    "AgentFacts",
    "AgentFactsSource",
    "AppliedPolicies",
    "Catalog",
    "CompiledBundle",
    "CompiledPolicy",
    "Decision",
    "DecisionRequest",
    "DelegationMode",
    "Effect",
    "Hop",
    "InstanceFacts",
    "InvalidDecisionRequestError",
    "KillFacts",
    "KillFactsSource",
    "Obligation",
    "OperationKind",
    "PolicyBundle",
    "PolicyBundleError",
    "PolicyEngine",
    "PolicyEpoch",
    "PolicyEpochConflictError",
    "PolicyService",
    "PolicyStore",
    "RequestContext",
    "ResourceRef",
    "ResourceType",
    "Scope",
    "ScopeError",
    "StaticFacts",
    "StoredPolicies",
    "ToolSpec",
    "UserFacts",
    "UserFactsSource",
    "agent_of_instance",
    "compile_bundle",
    "operation_token",
    "read_bundle",
]

from tabard.policy.approvals import (
    APPROVER_ROLE,
    Approval,
    ApprovalDecidedError,
    ApprovalFourEyesError,
    ApprovalNotFoundError,
    ApprovalRecorder,
    ApprovalService,
    ApprovalState,
    ApprovalStore,
    Approver,
    ApproverDirectory,
    InvalidApprovalError,
    NotAnApproverError,
)

__all__ += [
    "APPROVER_ROLE",
    "Approval",
    "ApprovalDecidedError",
    "ApprovalFourEyesError",
    "ApprovalNotFoundError",
    "ApprovalRecorder",
    "ApprovalService",
    "ApprovalState",
    "ApprovalStore",
    "Approver",
    "ApproverDirectory",
    "InvalidApprovalError",
    "NotAnApproverError",
]
