"""SPIFFE bundles: the public keys authoritative for one trust domain, and sets of them.

Spec: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Trust_Domain_and_Bundle.md
(bundle format, §4 of STANDARDS.md). A bundle never names its trust domain on the wire, so a
:class:`Bundle` always carries it beside the keys; bundles of different trust domains are
never merged: validators select the bundle of the presented ID's trust domain.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tabard.spiffe.errors import BundleError
from tabard.spiffe.id import TrustDomain

__all__ = [
    "USE_JWT_SVID",
    "USE_X509_SVID",
    "Bundle",
    "BundleSet",
    "BundleSource",
    "JwtAuthority",
    "PublicKey",
    "jwk_from_public_key",
    "public_key_from_jwk",
]

USE_X509_SVID = "x509-svid"
USE_JWT_SVID = "jwt-svid"

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "P-256": (ec.SECP256R1, 32),
    "P-384": (ec.SECP384R1, 48),
    "P-521": (ec.SECP521R1, 66),
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64u_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _int_bytes(n: int, length: int | None = None) -> bytes:
    return n.to_bytes(length or max(1, (n.bit_length() + 7) // 8), "big")


def jwk_from_public_key(key: PublicKey) -> dict[str, Any]:
    """The RFC 7517 key parameters of an EC or RSA public key (no ``use``/``kid``)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        crv = _CURVE_NAMES.get(key.curve.name)
        if crv is None:
            raise BundleError(f"unsupported curve {key.curve.name}")
        size = _CURVES[crv][1]
        nums = key.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": _b64u(_int_bytes(nums.x, size)),
            "y": _b64u(_int_bytes(nums.y, size)),
        }
    if isinstance(key, rsa.RSAPublicKey):
        rnums = key.public_numbers()
        return {"kty": "RSA", "n": _b64u(_int_bytes(rnums.n)), "e": _b64u(_int_bytes(rnums.e))}
    raise BundleError(f"unsupported key type {type(key).__name__}")


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """Parse the key parameters of an EC or RSA JWK; raises :class:`BundleError`."""
    try:
        kty = jwk["kty"]
        if kty == "EC":
            curve_cls, size = _CURVES[jwk["crv"]]
            x, y = _b64u_decode(jwk["x"]), _b64u_decode(jwk["y"])
            if len(x) != size or len(y) != size:
                raise BundleError("EC coordinates have the wrong length")
            return ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve_cls()
            ).public_key()
        if kty == "RSA":
            n = int.from_bytes(_b64u_decode(jwk["n"]), "big")
            e = int.from_bytes(_b64u_decode(jwk["e"]), "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
    except BundleError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"malformed JWK: {exc}") from exc
    raise BundleError(f"unsupported kty {kty!r}")


@dataclass(frozen=True, slots=True)
class JwtAuthority:
    """A JWT-SVID signing key as published in a bundle: its ``kid`` and public key."""

    key_id: str
    public_key: PublicKey

    def __post_init__(self) -> None:
        if not self.key_id:
            raise BundleError("a JWT authority needs a key ID")


@dataclass(frozen=True)
class Bundle:
    """The X.509 and JWT authorities of one trust domain, with the bundle's sequence number."""

    trust_domain: TrustDomain
    x509_authorities: tuple[x509.Certificate, ...] = ()
    jwt_authorities: tuple[JwtAuthority, ...] = ()
    sequence: int = 0
    refresh_hint: int | None = None
    _by_kid: dict[str, JwtAuthority] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kid: dict[str, JwtAuthority] = {}
        for authority in self.jwt_authorities:
            if authority.key_id in by_kid:
                raise BundleError(f"duplicate JWT authority key ID {authority.key_id!r}")
            by_kid[authority.key_id] = authority
        object.__setattr__(self, "_by_kid", by_kid)

    def jwt_authority(self, key_id: str) -> JwtAuthority | None:
        return self._by_kid.get(key_id)

    def get_bundle_for_trust_domain(self, trust_domain: TrustDomain) -> Bundle | None:
        """A single bundle is a :class:`BundleSource` for its own trust domain."""
        return self if trust_domain == self.trust_domain else None

    # --- SPIFFE bundle format (JWKS) -------------------------------------------------------

    def to_jwks(self) -> dict[str, Any]:
        keys: list[dict[str, Any]] = []
        for cert in self.x509_authorities:
            pub = cert.public_key()
            if not isinstance(pub, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
                raise BundleError("X.509 authority with an unsupported key type")
            der = cert.public_bytes(serialization.Encoding.DER)
            keys.append(
                {"use": USE_X509_SVID, **jwk_from_public_key(pub),
                 "x5c": [base64.b64encode(der).decode()]}
            )
        for authority in self.jwt_authorities:
            keys.append(
                {"use": USE_JWT_SVID, "kid": authority.key_id,
                 **jwk_from_public_key(authority.public_key)}
            )
        doc: dict[str, Any] = {"keys": keys, "spiffe_sequence": self.sequence}
        if self.refresh_hint is not None:
            doc["spiffe_refresh_hint"] = self.refresh_hint
        return doc

    def to_json(self) -> bytes:
        return json.dumps(self.to_jwks(), separators=(",", ":")).encode()

    def x509_pem(self) -> str:
        return "".join(
            c.public_bytes(serialization.Encoding.PEM).decode() for c in self.x509_authorities
        )

    @classmethod
    def parse(cls, trust_domain: TrustDomain, document: bytes | str | Mapping[str, Any]) -> Bundle:
        """Parse a SPIFFE bundle document for ``trust_domain``.

        Entries with an unknown ``kty`` or ``use`` are ignored, as the spec requires; an
        ``x509-svid`` entry without ``x5c`` is ignored; a ``jwt-svid`` entry without ``kid``
        is an error.
        """
        if isinstance(document, bytes | str):
            try:
                doc = json.loads(document)
            except ValueError as exc:
                raise BundleError(f"bundle is not JSON: {exc}") from exc
        else:
            doc = document
        if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
            raise BundleError("bundle must be a JSON object with a 'keys' array")
        x509s: list[x509.Certificate] = []
        jwts: list[JwtAuthority] = []
        for entry in doc["keys"]:
            if not isinstance(entry, Mapping) or entry.get("kty") not in ("EC", "RSA"):
                continue
            use = entry.get("use")
            if use == USE_X509_SVID:
                x5c = entry.get("x5c")
                if not isinstance(x5c, list) or not x5c:
                    continue
                try:
                    x509s.append(x509.load_der_x509_certificate(base64.b64decode(x5c[0])))
                except ValueError as exc:
                    raise BundleError(f"x509-svid entry holds no certificate: {exc}") from exc
            elif use == USE_JWT_SVID:
                kid = entry.get("kid")
                if not isinstance(kid, str) or not kid:
                    raise BundleError("jwt-svid entry without 'kid'")
                jwts.append(JwtAuthority(kid, public_key_from_jwk(entry)))
        sequence = doc.get("spiffe_sequence", 0)
        hint = doc.get("spiffe_refresh_hint")
        if not isinstance(sequence, int) or (hint is not None and not isinstance(hint, int)):
            raise BundleError("spiffe_sequence and spiffe_refresh_hint must be integers")
        return cls(trust_domain, tuple(x509s), tuple(jwts), sequence, hint)

    @classmethod
    def from_pem(cls, trust_domain: TrustDomain, pem: bytes) -> Bundle:
        try:
            certs = x509.load_pem_x509_certificates(pem)
        except ValueError as exc:
            raise BundleError(f"no certificates in PEM: {exc}") from exc
        return cls(trust_domain, tuple(certs))


class BundleSource(Protocol):
    """Anything that can hand out the bundle of a trust domain: a bundle, a set, a live cache."""

    def get_bundle_for_trust_domain(self, trust_domain: TrustDomain) -> Bundle | None: ...


class BundleSet:
    """Bundles of several trust domains (the local one plus federated ones), one per domain."""

    def __init__(self, bundles: Iterable[Bundle] = ()) -> None:
        self._bundles: dict[TrustDomain, Bundle] = {}
        for bundle in bundles:
            self.put(bundle)

    def put(self, bundle: Bundle) -> None:
        self._bundles[bundle.trust_domain] = bundle

    def remove(self, trust_domain: TrustDomain) -> None:
        self._bundles.pop(trust_domain, None)

    def get_bundle_for_trust_domain(self, trust_domain: TrustDomain) -> Bundle | None:
        return self._bundles.get(trust_domain)

    def __iter__(self) -> Iterator[Bundle]:
        return iter(list(self._bundles.values()))

    def __len__(self) -> int:
        return len(self._bundles)
