"""What the REST API writes to the audit log besides what the services write themselves:
the outcome of admin requests (their intent is recorded by the ``Admin`` dependency before
the handler runs) and SVID issuance (recorded before the SVID leaves the server)."""

from __future__ import annotations

import dataclasses
import logging

from tabard.audit import AuditEvent, AuditKind, AuditLog, Outcome, What, Who
from tabard.errors import TabardError
from tabard.server.deps import ServerServices

__all__ = ["record_admin_outcome", "record_issuance"]

log = logging.getLogger("tabard.server.audit")


async def record_admin_outcome(services: ServerServices, intent: tuple[AuditEvent, int],
                               status: int) -> None:
    """The outcome of an admin request whose intent is record ``seq``. The request has
    taken effect by now, so a failure here cannot refuse it: it is logged, and the trail
    keeps the intent (an intent without an outcome reads "outcome unknown")."""
    audit = services.audit
    if audit is None:
        return
    event, seq = intent
    outcome = Outcome.SUCCESS if status < 400 else (
        Outcome.DENIED if status in (401, 403) else Outcome.FAILURE)
    done = dataclasses.replace(event, outcome=outcome,
                               details={**event.details, "status": status, "intent": seq})
    try:
        await audit.append_async(done)
    except TabardError as exc:
        log.error("the outcome of admin request %s (intent %d) was not recorded: %s",
                  event.what.operation, seq, exc.message)


def record_issuance(audit: AuditLog | None, *, actor: str, kind: str, spiffe_id: str,
                    node: str | None = None, details: dict[str, object] | None = None,
                    entry_id: str | None = None) -> None:
    """Record one SVID issuance before handing the SVID out; if it cannot be recorded the
    SVID is never returned (fail closed)."""
    if audit is None:
        return
    who = Who.of_spiffe_id(spiffe_id, node=node)
    audit.append(AuditEvent(
        kind=AuditKind.ISSUANCE, actor=actor, who=who,
        what=What(operation=f"svid.{kind}", target=spiffe_id),
        details={**(details or {}), **({"entry_id": entry_id} if entry_id else {})}))
