"""Signing keys of the authorization server and of the dev demo user issuer.

They live in the authority's key manager (encrypted at rest by the disk key manager) under
their own prefix, apart from the JWT-SVID keys: an access token is signed by a key that no
SPIFFE bundle publishes, and a JWT-SVID by one that the AS JWKS never lists, so a token of
one kind can never verify as the other. The key ID embeds the creation time, so the newest
key signs; :meth:`SigningKeys.rotate` adds a new key and keeps the previous one published
(tokens it signed live minutes), deleting any older.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec

from tabard.authority import KeyManager, KeyNotFoundError, KeyType, PrivateKey, PublicKey
from tabard.authority.keymanager import key_type_of
from tabard.clock import Clock

__all__ = ["SigningKey", "SigningKeys", "public_jwk"]

_ALGORITHM = {KeyType.EC_P256: "ES256", KeyType.EC_P384: "ES384",
              KeyType.RSA_2048: "RS256", KeyType.RSA_4096: "RS256"}


def public_jwk(key: PublicKey, kid: str, alg: str) -> dict[str, Any]:
    """The RFC 7517 JWK of a public key, with ``kid``, ``alg`` and ``use: sig``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        jwk: dict[str, Any] = pyjwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = pyjwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: PrivateKey = field(repr=False)


class SigningKeys:
    """The keys named ``<prefix>-<UTC time>-<random>`` in a key manager; the newest signs."""

    def __init__(self, key_manager: KeyManager, prefix: str, clock: Clock,
                 key_type: KeyType = KeyType.EC_P256) -> None:
        self._km = key_manager
        self._prefix = prefix + "-"
        self._clock = clock
        self._key_type = KeyType(key_type)
        self._lock = threading.Lock()
        self._public: dict[str, tuple[PublicKey, str]] = {}
        self._active: SigningKey | None = None

    def ensure(self) -> None:
        """Load the keys, creating the first one if there is none."""
        with self._lock:
            if not self._ids():
                self._generate()
            self._load()

    def rotate(self) -> SigningKey:
        with self._lock:
            self._generate()
            for old in self._ids()[:-2]:
                self._km.delete(old)
            self._load()
            assert self._active is not None
            return self._active

    @property
    def active(self) -> SigningKey:
        key = self._active
        if key is None:
            self.ensure()
            key = self._active
            assert key is not None
        return key

    def public_key(self, kid: str) -> tuple[PublicKey, str] | None:
        """The public key and algorithm of a published ``kid``."""
        if self._active is None:
            self.ensure()
        return self._public.get(kid)

    def jwks(self) -> dict[str, Any]:
        if self._active is None:
            self.ensure()
        return {"keys": [public_jwk(key, kid, alg) for kid, (key, alg) in self._public.items()]}

    def _ids(self) -> list[str]:
        return sorted(k for k in self._km.key_ids() if k.startswith(self._prefix))

    def _generate(self) -> None:
        stamp = self._clock.now().strftime("%Y%m%dT%H%M%S")
        self._km.generate(f"{self._prefix}{stamp}-{secrets.token_hex(4)}", self._key_type)

    def _load(self) -> None:
        public: dict[str, tuple[PublicKey, str]] = {}
        active: SigningKey | None = None
        for kid in self._ids():
            try:
                private = self._km.private_key(kid)
            except KeyNotFoundError:
                continue
            alg = _ALGORITHM[key_type_of(private)]
            public[kid] = (private.public_key(), alg)
            active = SigningKey(kid, alg, private)
        self._public = public
        self._active = active
