"""Errors of the audit log: one class per rule, each with a stable ``code``."""

from __future__ import annotations

from tabard.errors import Invalid, NotFound, Unavailable

__all__ = [
    "AuditUnavailableError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "InvalidAuditEventError",
    "InvalidProofRequestError",
]


class AuditUnavailableError(Unavailable):
    """The audit log cannot be written: the operation that needed the record is refused
    (fail closed). The message says why; the operation may be retried."""

    code = "audit_unavailable"


class InvalidAuditEventError(Invalid):
    """An event that cannot be recorded as it is (a field of the wrong shape, a value JSON
    cannot carry exactly)."""

    code = "invalid_audit_event"


class CheckpointError(Invalid):
    """A checkpoint that does not verify: bad signature, a certificate that does not chain
    to the bundle, a body that is not the signed one."""

    code = "invalid_checkpoint"


class CheckpointNotFoundError(NotFound):
    code = "checkpoint_not_found"


class InvalidProofRequestError(Invalid):
    """A proof asked for sizes or a record the log (or its checkpoints) does not have."""

    code = "invalid_proof_request"
