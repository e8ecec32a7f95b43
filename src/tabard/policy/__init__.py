"""Blended authorization: Cedar policies over agent, user and delegation chain (ARCHITECTURE §3)."""

from tabard.policy.scopes import MAX_SCOPE_TOKENS, OperationKind, Scope, ScopeError, operation_token

__all__ = ["MAX_SCOPE_TOKENS", "OperationKind", "Scope", "ScopeError", "operation_token"]
