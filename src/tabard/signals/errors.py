"""Errors of the kill switch, each with a stable ``code``."""

from __future__ import annotations

from tabard.errors import Conflict, Invalid, NotFound

__all__ = ["InvalidKillError", "KillConflictError", "KillTargetNotFoundError"]


class InvalidKillError(Invalid):
    """A target, narrowing or reason that breaks a rule (the message names it)."""

    code = "invalid_kill"


class KillTargetNotFoundError(NotFound):
    """The agent named by a kill-switch change does not exist."""

    code = "kill_target_not_found"


class KillConflictError(Conflict):
    """The change is already in force (suspending what is suspended)."""

    code = "kill_conflict"
