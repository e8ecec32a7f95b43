"""Verifying the JWTs the AS receives (user tokens, assertions, its own access tokens).

PyJWT checks the signature with an allow-listed algorithm; the time claims are checked here
against tabard's :class:`~tabard.clock.Clock` (PyJWT reads the system time), and audience and
issuer rules differ per use, so each caller states them. JWT-SVIDs are verified by
:func:`tabard.spiffe.verify_jwt_svid`, never here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt

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

KeyResolver = Callable[[Mapping[str, Any], Mapping[str, Any]], "tuple[Any, str] | None"]
"""``(header, unverified claims) -> (public key, algorithm)``, or None: no trusted key."""


class JwtInvalid(Exception):
    """Why a JWT was refused; callers turn it into the OAuth error of their context."""


@dataclass(frozen=True, slots=True)
class VerifiedJwt:
    header: Mapping[str, Any]
    claims: Mapping[str, Any]


def unverified_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims without any check: only to choose the key to verify with."""
    if not isinstance(token, str) or not token or len(token) > MAX_JWT_LENGTH:
        raise JwtInvalid("not a JWT")
    try:
        header = pyjwt.get_unverified_header(token)
        claims = pyjwt.decode(token, options={"verify_signature": False})
    except pyjwt.PyJWTError as exc:
        raise JwtInvalid(f"not a JWT ({exc.__class__.__name__})") from None
    if not isinstance(claims, dict):
        raise JwtInvalid("the JWT claims are not an object")
    return header, claims


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
    header, unverified = unverified_claims(token)
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
    try:
        claims = pyjwt.decode(
            token, key, algorithms=[alg],
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                     "verify_aud": False, "verify_iss": False},
        )
    except pyjwt.InvalidSignatureError:
        raise JwtInvalid("the JWT signature does not verify") from None
    except pyjwt.PyJWTError as exc:
        raise JwtInvalid(f"the JWT cannot be verified ({exc.__class__.__name__})") from None
    for name in required:
        if name not in claims:
            raise JwtInvalid(f"the JWT lacks the {name!r} claim")
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
