"""Verifying the JWTs the AS receives (user tokens, assertions, its own access tokens).

PyJWT's algorithm objects check the signature with an allow-listed algorithm; the time
claims are checked here against tabard's :class:`~tabard.clock.Clock` (PyJWT reads the system
time), and audience and issuer rules differ per use, so each caller states them. JWT-SVIDs
are verified by :func:`tabard.spiffe.verify_jwt_svid`, never here.

The compact serialization (RFC 7515 §7.1) is split and decoded here, once per token, rather
than by ``jwt.decode``: PyJWT checks each base64url segment's alphabet one character at a
time in Python, which made a token's decoding cost more than its ECDSA verification (2 ms
a token on the gateway's path, where every request carries two). A compiled pattern
checks the same alphabet; PyJWT still does the cryptography.
"""

from __future__ import annotations

import binascii
import json
import re
from base64 import urlsafe_b64decode
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
from jwt.algorithms import get_default_algorithms

from tabard.authority import PublicKey

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "JwtInvalid",
    "KeyResolver",
    "VerifiedJwt",
    "audiences_of",
    "unverified_claims",
    "verify_jwt",
]

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MAX_JWT_LENGTH = 16 * 1024
_ALGORITHMS = {name: alg for name, alg in get_default_algorithms().items()
               if name in ASYMMETRIC_ALGORITHMS}
# base64url (RFC 7515 §2); the trailing "=" some issuers add is tolerated, as PyJWT does
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*={0,2}")

KeyResolver = Callable[[Mapping[str, Any], Mapping[str, Any]], "tuple[Any, str] | None"]
"""``(header, unverified claims) -> (public key, algorithm)``, or None: no trusted key."""


class JwtInvalid(Exception):
    """Why a JWT was refused; callers turn it into the OAuth error of their context."""


@dataclass(frozen=True, slots=True)
class VerifiedJwt:
    header: Mapping[str, Any]
    claims: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Parsed:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _segment(segment: str, what: str) -> bytes:
    stripped = segment.rstrip("=")
    if (not _SEGMENT.fullmatch(segment) or len(stripped) % 4 == 1
            or (stripped != segment and len(segment) % 4)):
        raise JwtInvalid(f"not a JWT (its {what} is not base64url)")
    try:
        return urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise JwtInvalid(f"not a JWT (its {what} is not base64url)") from None


def _object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_segment(segment, what))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise JwtInvalid(f"not a JWT (its {what} is not JSON)") from None
    if not isinstance(value, dict):
        raise JwtInvalid(f"the JWT {what} is not an object")
    return value


def _parse(token: str) -> _Parsed:
    if not isinstance(token, str) or not token or len(token) > MAX_JWT_LENGTH:
        raise JwtInvalid("not a JWT")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtInvalid("not a JWT (a JWS in compact form has three parts)")
    header = _object(parts[0], "header")
    claims = _object(parts[1], "claims")
    signature = _segment(parts[2], "signature")
    if "crit" in header:  # RFC 7515 §4.1.11: no extension is understood here
        raise JwtInvalid("the JWT names critical header extensions")
    return _Parsed(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def unverified_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims without any check: only to choose the key to verify with."""
    parsed = _parse(token)
    return parsed.header, parsed.claims


def audiences_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    return ()


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JwtInvalid(f"claim {name!r} must be a number")
    return float(value)


def verify_jwt(
    token: str,
    resolve: KeyResolver,
    *,
    now: float,
    leeway: float = 30,
    required: Iterable[str] = ("exp",),
    typ: Iterable[str] | None = None,
) -> VerifiedJwt:
    """Signature (asymmetric algorithms only), ``typ`` when given, required claims, ``exp``,
    ``nbf`` and a not-in-the-future ``iat``. Audience and issuer are the caller's."""
    parsed = _parse(token)
    header, unverified = parsed.header, parsed.claims
    alg = header.get("alg")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise JwtInvalid("the JWT is not signed with an allowed asymmetric algorithm")
    if typ is not None:
        wanted = {t.lower() for t in typ}
        got = str(header.get("typ", "")).lower().removeprefix("application/")
        if got not in wanted:
            raise JwtInvalid(f"the JWT 'typ' must be {' or '.join(sorted(wanted))}")
    resolved = resolve(header, unverified)
    if resolved is None:
        raise JwtInvalid("no trusted key verifies this JWT (unknown issuer or key ID)")
    key, key_alg = resolved
    if key_alg != alg:
        raise JwtInvalid("the JWT 'alg' does not match its key")
    algorithm = _ALGORITHMS.get(alg)
    if algorithm is None:
        raise JwtInvalid("the JWT's algorithm is not available here")
    try:
        prepared = algorithm.prepare_key(key)
        valid = algorithm.verify(parsed.signing_input, prepared, parsed.signature)
    except (pyjwt.PyJWTError, TypeError, ValueError) as exc:
        raise JwtInvalid(f"the JWT cannot be verified ({exc.__class__.__name__})") from None
    if not valid:
        raise JwtInvalid("the JWT signature does not verify")
    claims = unverified
    for name in required:
        if name not in claims:
            raise JwtInvalid(f"the JWT lacks the {name!r} claim")
    for name in ("iss", "sub", "jti"):  # StringOrURI / string (RFC 7519 §4.1)
        if name in claims and not isinstance(claims[name], str):
            raise JwtInvalid(f"the JWT's {name!r} claim must be a string")
    exp, nbf, iat = _number(claims, "exp"), _number(claims, "nbf"), _number(claims, "iat")
    if exp is not None and now >= exp + leeway:
        raise JwtInvalid("the JWT has expired")
    if nbf is not None and now + leeway < nbf:
        raise JwtInvalid("the JWT is not valid yet")
    if iat is not None and now + leeway < iat:
        raise JwtInvalid("the JWT was issued in the future")
    return VerifiedJwt(header, claims)


def key_resolver_for(keys: Callable[[str], tuple[PublicKey, str] | None]) -> KeyResolver:
    """A resolver over ``kid -> (key, alg)``."""

    def resolve(header: Mapping[str, Any], _claims: Mapping[str, Any]) -> tuple[Any, str] | None:
        kid = header.get("kid")
        return keys(kid) if isinstance(kid, str) else None

    return resolve
