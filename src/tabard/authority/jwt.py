"""JWT-SVID signing (STANDARDS.md §3.2 header, §3.3 claims).

Spec: https://github.com/spiffe/spiffe/blob/main/standards/JWT-SVID.md. The header holds
exactly ``alg``, ``kid`` and ``typ: JWT``; claims are ``sub``, ``aud``, ``exp``, ``iat`` and
``jti``, plus any extra claims that do not collide with those.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal, get_args

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tabard.authority.errors import CaExpiredError, SvidRequestError
from tabard.authority.keymanager.base import KeyType, PrivateKey, key_type_of
from tabard.clock import Clock
from tabard.spiffe import SpiffeId

__all__ = [
    "DEFAULT_JWT_SVID_TTL",
    "JWT_ALGORITHMS",
    "RESERVED_CLAIMS",
    "JwtAlgorithm",
    "JwtSigner",
    "algorithm_for_key_type",
    "algorithm_supports",
]

JwtAlgorithm = Literal["ES256", "ES384", "RS256", "PS256"]
JWT_ALGORITHMS: Final[tuple[str, ...]] = get_args(JwtAlgorithm)
DEFAULT_JWT_SVID_TTL = timedelta(minutes=5)
RESERVED_CLAIMS: Final = frozenset({"sub", "aud", "exp", "iat", "jti"})


def algorithm_supports(algorithm: str, key_type: KeyType) -> bool:
    """Whether a key of ``key_type`` can sign with ``algorithm``."""
    if algorithm == "ES256":
        return key_type is KeyType.EC_P256
    if algorithm == "ES384":
        return key_type is KeyType.EC_P384
    if algorithm in ("RS256", "PS256"):
        return key_type in (KeyType.RSA_2048, KeyType.RSA_4096)
    return False


def algorithm_for_key_type(key_type: KeyType) -> JwtAlgorithm:
    """The natural algorithm of a key type (used when the configured one does not fit)."""
    if key_type is KeyType.EC_P256:
        return "ES256"
    if key_type is KeyType.EC_P384:
        return "ES384"
    return "RS256"


class JwtSigner:
    """Signs JWT-SVIDs with one key; ``key_id`` is the ``kid`` published in the bundle.

    ``not_after`` (the key's end of publication) caps every token's ``exp``, so no token
    outlives the bundle entry that validates it.
    """

    def __init__(
        self,
        key_id: str,
        private_key: PrivateKey,
        algorithm: str = "ES256",
        *,
        clock: Clock,
        not_after: datetime | None = None,
    ) -> None:
        if not key_id:
            raise SvidRequestError("a JWT signing key needs a key ID")
        if algorithm not in JWT_ALGORITHMS:
            raise SvidRequestError(
                f"JWT-SVID algorithm must be one of {', '.join(JWT_ALGORITHMS)}"
            )
        if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise SvidRequestError("the JWT signing key must be an EC or RSA key")
        if not algorithm_supports(algorithm, key_type_of(private_key)):
            raise SvidRequestError(f"{algorithm} cannot be used with this signing key")
        self.key_id = key_id
        self.algorithm = algorithm
        self._key = private_key
        self._clock = clock
        self._headers = {"kid": key_id}
        self._not_after = int(not_after.timestamp()) if not_after is not None else None

    def mint(
        self,
        spiffe_id: SpiffeId,
        audience: str | Sequence[str],
        ttl: timedelta = DEFAULT_JWT_SVID_TTL,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A compact JWS for ``spiffe_id``; ``aud`` is a string for one audience, else a list."""
        if not isinstance(spiffe_id, SpiffeId) or spiffe_id.is_trust_domain_id:
            raise SvidRequestError("a JWT-SVID subject must be a workload SPIFFE ID with a path")
        audiences = [audience] if isinstance(audience, str) else list(dict.fromkeys(audience))
        if not audiences or any(not isinstance(a, str) or not a for a in audiences):
            raise SvidRequestError("a JWT-SVID needs at least one non-empty audience")
        if ttl <= timedelta(0):
            raise SvidRequestError("the JWT-SVID TTL must be positive")
        issued_at = int(self._clock.timestamp())
        expires = issued_at + max(1, int(ttl.total_seconds()))
        if self._not_after is not None:
            if issued_at >= self._not_after:
                raise CaExpiredError("the JWT signing key has expired")
            expires = min(expires, self._not_after)
        claims: dict[str, Any] = {}
        if extra_claims:
            clashing = RESERVED_CLAIMS.intersection(extra_claims)
            if clashing:
                raise SvidRequestError(
                    f"extra claims may not set {', '.join(sorted(clashing))}"
                )
            claims.update(extra_claims)
        claims["sub"] = str(spiffe_id)
        claims["aud"] = audiences[0] if len(audiences) == 1 else audiences
        claims["exp"] = expires
        claims["iat"] = issued_at
        claims["jti"] = secrets.token_urlsafe(16)
        return pyjwt.encode(claims, self._key, algorithm=self.algorithm, headers=self._headers)
