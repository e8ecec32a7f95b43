"""Human approval of held calls (the ``require_approval`` obligation).

The gateway holds a call whose decision carries ``require_approval`` and files an
:class:`Approval` through :meth:`ApprovalService.request`; a person approves or denies it
(``tabard approvals``, ``/api/v1/approvals``) before ``expires_at``, or it expires and the
call is denied. Rules: the approver is an active person holding the ``approver`` role in
the directory (:class:`ApproverDirectory`, filled in ``tabard.app``) and is not the user the
call is made for — or, when the agent acts as principal (no user), not the agent's owner
(four eyes, through ``owner_of``); only a pending approval can be decided, once — the store's
conditional update makes a second decision, on any replica, a :class:`ApprovalDecidedError`.
Every request and decision goes to :class:`ApprovalRecorder` (the audit log).
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from tabard.clock import Clock
from tabard.errors import Conflict, Denied, Invalid, NotFound

__all__ = [
    "APPROVER_ROLE",
    "MAX_APPROVAL_TIMEOUT",
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

APPROVER_ROLE = "approver"
MAX_APPROVAL_TIMEOUT = timedelta(days=1)
MAX_TEXT = 2048


class InvalidApprovalError(Invalid):
    code = "invalid_approval"


class ApprovalNotFoundError(NotFound):
    code = "approval_not_found"


class ApprovalDecidedError(Conflict):
    """The approval is no longer pending (decided, or expired)."""

    code = "approval_not_pending"


class NotAnApproverError(Denied):
    code = "not_an_approver"


class ApprovalFourEyesError(Denied):
    """The approver is the user the held call is made for."""

    code = "four_eyes"


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    id: str
    state: ApprovalState
    agent: str
    instance: str
    user: str | None
    action: str
    resource: str
    route: str
    reason: str
    requested_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str = ""
    decided_via: str | None = None
    """The admin token the decision came through (recorded in the audit log, not stored)."""

    def as_of(self, now: datetime) -> Approval:
        """A pending approval past ``expires_at`` reads as expired."""
        if self.state is ApprovalState.PENDING and now >= self.expires_at:
            return replace(self, state=ApprovalState.EXPIRED)
        return self


@dataclass(frozen=True, slots=True)
class Approver:
    user_name: str
    active: bool
    is_person: bool
    roles: frozenset[str]


class ApprovalStore(Protocol):
    def add(self, approval: Approval) -> None: ...

    def get(self, approval_id: str) -> Approval | None: ...

    def list(self, *, limit: int = 1000) -> Sequence[Approval]:
        """Newest first, as stored (no expiry applied)."""
        ...

    def decide(self, approval_id: str, *, state: ApprovalState, decided_by: str,
               decided_at: datetime, reason: str) -> bool:
        """Set the decision if the approval is still pending and ``decided_at`` is before its
        ``expires_at``; ``False`` otherwise (one decision, even across replicas)."""
        ...


class ApproverDirectory(Protocol):
    """Who may approve (filled from :mod:`tabard.directory`)."""

    def find_approver(self, user_name: str) -> Approver | None: ...


class ApprovalRecorder(Protocol):
    """Where requests and decisions are recorded (the audit log); raising refuses them."""

    def approval_requested(self, approval: Approval) -> None: ...

    def approval_decided(self, approval: Approval) -> None: ...


def _text(value: str, what: str, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidApprovalError(f"{what} is required")
    if len(value) > MAX_TEXT:
        raise InvalidApprovalError(f"{what} is limited to {MAX_TEXT} characters")
    return value


class ApprovalService:
    def __init__(self, store: ApprovalStore, approvers: ApproverDirectory, clock: Clock, *,
                 recorder: ApprovalRecorder | None = None,
                 owner_of: Callable[[str], str | None] | None = None) -> None:
        self._store, self._approvers, self._clock = store, approvers, clock
        self._recorder = recorder
        self._owner_of = owner_of

    def request(self, *, agent: str, instance: str, user: str | None, action: str,
                resource: str, route: str, reason: str, timeout: timedelta) -> Approval:
        if not timedelta(0) < timeout <= MAX_APPROVAL_TIMEOUT:
            raise InvalidApprovalError("an approval timeout is above 0 and at most one day")
        now = self._clock.now()
        approval = Approval(
            id=secrets.token_hex(8), state=ApprovalState.PENDING,
            agent=_text(agent, "agent"), instance=_text(instance, "instance"),
            user=None if user is None else _text(user, "user"),
            action=_text(action, "action"), resource=_text(resource, "resource"),
            route=_text(route, "route"), reason=_text(reason, "reason", required=False),
            requested_at=now, expires_at=now + timeout, decided_by=None, decided_at=None)
        if self._recorder is not None:
            self._recorder.approval_requested(approval)
        self._store.add(approval)
        return approval

    def get(self, approval_id: str) -> Approval:
        approval = self._store.get(approval_id) if isinstance(approval_id, str) else None
        if approval is None:
            raise ApprovalNotFoundError(f"no approval {approval_id!r}")
        return approval.as_of(self._clock.now())

    def list(self, *, state: ApprovalState | None = None) -> builtins.list[Approval]:
        now = self._clock.now()
        seen = [a.as_of(now) for a in self._store.list()]
        return seen if state is None else [a for a in seen if a.state is state]

    def approve(self, approval_id: str, *, approver: str, reason: str = "",
                via: str | None = None) -> Approval:
        """``via``: the admin token the decision came through, for the record."""
        return self._decide(approval_id, ApprovalState.APPROVED, approver, reason, via)

    def deny(self, approval_id: str, *, approver: str, reason: str = "",
             via: str | None = None) -> Approval:
        return self._decide(approval_id, ApprovalState.DENIED, approver, reason, via)

    def _decide(self, approval_id: str, state: ApprovalState, approver: str,
                reason: str, via: str | None) -> Approval:
        reason = _text(reason, "reason", required=False)
        current = self.get(approval_id)
        if current.state is not ApprovalState.PENDING:
            raise ApprovalDecidedError(f"approval {approval_id} is {current.state.value}")
        person = self._approver(approver)
        if current.user is not None and person.user_name.casefold() == current.user.casefold():
            raise ApprovalFourEyesError(
                f"{person.user_name!r} cannot approve a call made for themselves")
        if current.user is None:  # the agent acts as principal: its owner is the requester
            if self._owner_of is None:
                raise ApprovalFourEyesError("a call without a user needs the agent's owner to "
                                            "check four eyes, and none can be looked up")
            owner = self._owner_of(current.agent)
            if owner is not None and person.user_name.casefold() == owner.casefold():
                raise ApprovalFourEyesError(f"{person.user_name!r} owns agent "
                                            f"{current.agent!r} and cannot approve its call")
        now = self._clock.now()
        decided = replace(current, state=state, decided_by=person.user_name, decided_at=now,
                          decision_reason=reason, decided_via=via)
        if self._recorder is not None:  # fail closed: no record, no decision
            self._recorder.approval_decided(decided)
        if not self._store.decide(approval_id, state=state, decided_by=person.user_name,
                                  decided_at=now, reason=reason):
            raise ApprovalDecidedError(
                f"approval {approval_id} is {self.get(approval_id).state.value}")
        return decided

    def _approver(self, user_name: str) -> Approver:
        name = user_name.strip() if isinstance(user_name, str) else ""
        person = self._approvers.find_approver(name) if name else None
        if (person is None or not person.active or not person.is_person
                or APPROVER_ROLE not in person.roles):
            raise NotAnApproverError(f"{user_name!r} is not an active directory user with "
                                     f"the {APPROVER_ROLE!r} role")
        return person
