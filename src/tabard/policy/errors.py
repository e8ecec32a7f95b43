"""Errors of the policy package, each with a stable ``code``."""

from __future__ import annotations

from collections.abc import Sequence

from tabard.errors import Conflict, Invalid

__all__ = ["InvalidDecisionRequestError", "PolicyBundleError", "PolicyEpochConflictError"]


class PolicyBundleError(Invalid):
    """A policy bundle that cannot be accepted: a parse or schema-validation error, a bad
    catalog, a bad file name. ``problems`` lists each one, prefixed with its file name."""

    code = "invalid_policy"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(f"policy bundle refused: {shown}{more}")


class InvalidDecisionRequestError(Invalid):
    code = "invalid_decision_request"


class PolicyEpochConflictError(Conflict):
    """Another change was accepted since the epoch the caller read."""

    code = "policy_epoch_conflict"
