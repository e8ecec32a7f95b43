"""User-token issuers the AS trusts: configured OpenID providers (keys from their
``jwks_uri``) and, under ``tabard dev``, the built-in demo issuer (keys in process).

Remote JWKS are fetched with PyJWT's :class:`jwt.PyJWKClient` (cached; refetched once for an
unknown ``kid``, so the provider's key rotation is followed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt

from tabard.oauth.jwts import KeyResolver

__all__ = ["TrustedIssuer", "remote_jwks_resolver"]


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer of user tokens. ``audiences`` are the ``aud`` values accepted in its tokens
    (empty: the AS issuer). ``require_directory_user``: its ``sub`` must be an active person
    of tabard's directory (always so for the demo issuer); otherwise a user the directory
    knows must be active, and one it does not know is the provider's to vouch for."""

    issuer: str
    resolve: KeyResolver = field(repr=False)
    audiences: tuple[str, ...] = ()
    require_directory_user: bool = False


def remote_jwks_resolver(jwks_uri: str, *, timeout: float = 10.0) -> KeyResolver:
    client = pyjwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=300, timeout=int(timeout))

    def resolve(header: Mapping[str, Any], _claims: Mapping[str, Any]) -> tuple[Any, str] | None:
        kid = header.get("kid")
        try:
            if isinstance(kid, str):
                jwk = client.get_signing_key(kid)
            else:
                keys = client.get_signing_keys()
                if len(keys) != 1:
                    return None
                jwk = keys[0]
        except pyjwt.PyJWKClientError:
            return None
        return jwk.key, str(jwk.algorithm_name)

    return resolve
