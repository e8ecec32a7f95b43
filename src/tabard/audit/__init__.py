"""The tamper-evident audit log (ARCHITECTURE §1, §6 step 7; issue 7).

One append-only log of every security-relevant event. Each record is canonical JSON behind a
small binary header that carries its number and its predecessor's hash (:mod:`.record`); the
records are the leaves of an RFC 9162 Merkle tree (:mod:`.merkle`) whose head is signed in
checkpoints by the audit key, certified by the trust domain's CA (:mod:`.checkpoint`), so a
checkpoint verifies offline with the trust bundle. :class:`AuditLog` (:mod:`.service`)
appends durably with group commit, verifies (:mod:`.verify`), exports, traces and proves.

Recording an event (any service; refuse the operation if it raises)::

    audit.append(AuditEvent(
        kind=AuditKind.TOKEN_GRANT, actor=client_id,
        who=Who.of_spiffe_id(agent_spiffe_id, user="alice", chain=(...)),
        what=What(operation="token-exchange", target=audience),
        decision=Decision(effect="allow", policies=("policy-7",)),
        outcome=Outcome.SUCCESS, details={"scope": "refunds:write"}))
"""

from tabard.audit.checkpoint import (
    AUDIT_PATH,
    CHECKPOINT_TYPE,
    AuditSigner,
    Checkpoint,
    SvidMinter,
    audit_spiffe_id,
    verify_checkpoint,
)
from tabard.audit.errors import (
    AuditUnavailableError,
    CheckpointError,
    CheckpointNotFoundError,
    InvalidAuditEventError,
    InvalidProofRequestError,
)
from tabard.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from tabard.audit.ports import AuditStore, ChainHead, NewRecord, StoredCheckpoint
from tabard.audit.record import (
    GENESIS,
    AuditEvent,
    AuditKind,
    AuditRecord,
    Decision,
    Outcome,
    What,
    Who,
    canonical_json,
    encode_entry,
)
from tabard.audit.service import AuditLog, ConsistencyProof, InclusionProof
from tabard.audit.verify import Problem, VerifyReport, verify_rows

__all__ = [
    "AUDIT_PATH",
    "CHECKPOINT_TYPE",
    "EMPTY_ROOT",
    "GENESIS",
    "AuditEvent",
    "AuditKind",
    "AuditLog",
    "AuditRecord",
    "AuditSigner",
    "AuditStore",
    "AuditUnavailableError",
    "ChainHead",
    "Checkpoint",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CompactRange",
    "ConsistencyProof",
    "Decision",
    "InclusionProof",
    "InvalidAuditEventError",
    "InvalidProofRequestError",
    "NewRecord",
    "Outcome",
    "Problem",
    "StoredCheckpoint",
    "SvidMinter",
    "VerifyReport",
    "What",
    "Who",
    "audit_spiffe_id",
    "canonical_json",
    "consistency_proof",
    "encode_entry",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_rows",
]
