"""Attestation: evidence about nodes and processes turned into selectors.

:mod:`.node` holds the server-side node attestor interface (:class:`NodeAttestor`, a
registry of attestors by name) and the join-token attestor. Attestors return selectors
only; matching them to entries is the registry's job.
"""

from tabard.attestation.node import (
    JOIN_TOKEN_ATTESTOR,
    JOIN_TOKEN_PREFIX,
    AttestationError,
    AttestedNode,
    ConsumeOutcome,
    ConsumeResult,
    InvalidJoinTokenError,
    IssuedJoinToken,
    JoinTokenAttestor,
    JoinTokenRecord,
    JoinTokens,
    JoinTokenStore,
    NodeAttestor,
    NodeAttestors,
    UnknownAttestorError,
    join_token_digest,
)

__all__ = [
    "JOIN_TOKEN_ATTESTOR",
    "JOIN_TOKEN_PREFIX",
    "AttestationError",
    "AttestedNode",
    "ConsumeOutcome",
    "ConsumeResult",
    "InvalidJoinTokenError",
    "IssuedJoinToken",
    "JoinTokenAttestor",
    "JoinTokenRecord",
    "JoinTokenStore",
    "JoinTokens",
    "NodeAttestor",
    "NodeAttestors",
    "UnknownAttestorError",
    "join_token_digest",
]
