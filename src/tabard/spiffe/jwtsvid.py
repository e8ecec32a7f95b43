"""JWT-SVIDs: parse, check the header, verify the signature and the claims, in one call.

Spec: https://github.com/spiffe/spiffe/blob/main/standards/JWT-SVID.md (STANDARDS.md §3).
:func:`verify_jwt_svid` is the only way in; there is no unverified decode in the public API.
The header and claim rules are ours (§3.2 to §3.4, stricter than the spec where it says
"recommend": ``kid`` is required and every header parameter other than ``alg``/``kid``/``typ``
is rejected).

The signature is checked with ``cryptography`` directly, not through PyJWT: this runs on every
request, and PyJWT's ``jwt.decode`` parses the token a second time and applies claim rules
that differ from SPIFFE's, while its per-algorithm ``verify`` rebuilds the padding and ECDSA
objects and converts the JWS signature through Python integers on each call (about 10 % of a
P-256 verify, measured). Here the nine allowed algorithms map to prebuilt ``cryptography``
parameters (RFC 7518 §3.3 to §3.5: PKCS#1 v1.5, ECDSA on the matching curve with the raw
``R || S`` signature re-encoded as DER, PSS with MGF1 and a salt as long as the hash), and
the key objects come straight from the bundle, so no JWK is parsed per token. Decoded
headers and parsed ``sub`` values are memoised: both repeat across the tokens of an issuer.

:class:`JwtSvidValidator` adds a bounded cache of verified tokens; a hit still checks the
expiry, the audience and that the bundle served now still holds the signing key, so
retiring a key invalidates cached tokens immediately. :class:`JwtSvidCache` is the same
cache for a caller that passes the bundle source and the time on each call (the gateway,
whose bundle is a callable of the authority); it keys tokens by their SHA-256 digest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
from binascii import a2b_base64
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding

from tabard.clock import Clock
from tabard.spiffe.bundle import BundleSource, PublicKey
from tabard.spiffe.errors import JwtSvidError, SpiffeIdError
from tabard.spiffe.id import SpiffeId, TrustDomain

__all__ = [
    "ALLOWED_ALGORITHMS",
    "MAX_TOKEN_LENGTH",
    "JwtSvid",
    "JwtSvidCache",
    "JwtSvidValidator",
    "verify_jwt_svid",
]

ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
)
"""The only ``alg`` values a JWT-SVID may carry (STANDARDS.md §3.2)."""

MAX_TOKEN_LENGTH = 64 * 1024
"""Longer tokens are refused unparsed; a JWT-SVID is a few hundred bytes."""


@dataclass(frozen=True, slots=True)
class _Algorithm:
    """How one JWS ``alg`` is verified: its curve (ECDSA) or padding (RSA) and hash."""

    hash: hashes.HashAlgorithm
    curve: type[ec.EllipticCurve] | None = None
    coordinate_size: int = 0
    pss: bool = False
    ecdsa: ec.ECDSA | None = field(init=False, default=None)
    padding: asym_padding.AsymmetricPadding | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.curve is not None:
            object.__setattr__(self, "ecdsa", ec.ECDSA(self.hash))
        elif self.pss:
            object.__setattr__(
                self,
                "padding",
                asym_padding.PSS(asym_padding.MGF1(self.hash), self.hash.digest_size),
            )
        else:
            object.__setattr__(self, "padding", asym_padding.PKCS1v15())

    def key_fits(self, key: PublicKey) -> bool:
        kind = _key_kinds.get(type(key)) or _key_kind(key)
        if self.curve is None:
            return kind == "rsa"
        return kind == "ec" and isinstance(getattr(key, "curve", None), self.curve)

    def verify(self, key: Any, message: bytes, signature: bytes) -> bool:
        """Only for a key that :meth:`key_fits` (hence ``Any``: no casts on the hot path)."""
        try:
            if self.ecdsa is not None:
                if len(signature) != 2 * self.coordinate_size:
                    return False
                key.verify(_der_ecdsa(signature, self.coordinate_size), message, self.ecdsa)
            else:
                key.verify(signature, message, self.padding, self.hash)
        except InvalidSignature:
            return False
        return True


# ``isinstance`` against the ``cryptography`` key ABCs costs as much as the rest of the header
# checks together; the answer depends only on the concrete key class, so it is memoised.
_key_kinds: dict[type[Any], str] = {}


def _key_kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        kind = "ec"
    elif isinstance(key, rsa.RSAPublicKey):
        kind = "rsa"
    else:
        kind = "other"
    _key_kinds[type(key)] = kind
    return kind


def _der_ecdsa(signature: bytes, size: int) -> bytes:
    """The DER ``ECDSA-Sig-Value`` of a JWS ``R || S`` signature (RFC 7518 §3.4)."""
    r = signature[:size].lstrip(b"\0") or b"\0"
    s = signature[size:].lstrip(b"\0") or b"\0"
    if r[0] & 0x80:
        r = b"\0" + r
    if s[0] & 0x80:
        s = b"\0" + s
    length = len(r) + len(s) + 4
    return b"".join(
        (
            b"\x30" if length < 0x80 else b"\x30\x81",
            bytes((length, 2, len(r))),
            r,
            bytes((2, len(s))),
            s,
        )
    )


_ALGORITHMS: dict[str, _Algorithm] = {
    "RS256": _Algorithm(hashes.SHA256()),
    "RS384": _Algorithm(hashes.SHA384()),
    "RS512": _Algorithm(hashes.SHA512()),
    "PS256": _Algorithm(hashes.SHA256(), pss=True),
    "PS384": _Algorithm(hashes.SHA384(), pss=True),
    "PS512": _Algorithm(hashes.SHA512(), pss=True),
    "ES256": _Algorithm(hashes.SHA256(), ec.SECP256R1, 32),
    "ES384": _Algorithm(hashes.SHA384(), ec.SECP384R1, 48),
    "ES512": _Algorithm(hashes.SHA512(), ec.SECP521R1, 66),
}
assert frozenset(_ALGORITHMS) == ALLOWED_ALGORITHMS
_HEADER_PARAMS = frozenset({"alg", "kid", "typ"})
_TYPES = frozenset({"JWT", "JOSE"})


def _fail(message: str, reason: str) -> NoReturn:
    raise JwtSvidError(message, reason=reason)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name")
    return obj


# NaN and Infinity are not JSON (RFC 8259 §6) and are always rejected. A header with a
# duplicate member name is rejected (RFC 7515 §5.2 allows either that or "lexically last");
# headers are memoised, so the stricter check is free there. In the claims set, Python's
# parser keeps the lexically last member, the other choice RFC 7519 §4 allows, because a
# hook on every object would cost a measurable share of each validation.
_HEADER_JSON = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_reject_constant)
_CLAIMS_JSON = json.JSONDecoder(parse_constant=_reject_constant)


_URLSAFE = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"===", b"==", b"=")


def _b64(segment: str) -> bytes:
    """base64url without padding; raises ``ValueError`` (``binascii.Error``) on anything else.

    The caller has rejected "+", "/" and "="; strict mode rejects every other stray byte.
    """
    return a2b_base64(
        segment.encode("ascii").translate(_URLSAFE) + _PADDING[len(segment) % 4],
        strict_mode=True,
    )


def _json_object(segment: str, what: str, decoder: json.JSONDecoder) -> dict[str, Any]:
    try:
        text = _b64(segment).decode()
        # ``raw_decode`` skips the whitespace handling of ``decode``; a document that it does
        # not consume exactly (surrounding whitespace, trailing data, errors) takes the full
        # path, which accepts the first and rejects the others.
        try:
            value, end = decoder.raw_decode(text)
        except ValueError:
            end = -1
        if end != len(text):
            value = decoder.decode(text)
    except ValueError as exc:  # binascii.Error and UnicodeError are ValueErrors
        raise JwtSvidError(f"the {what} is not base64url-encoded JSON", reason="malformed") from exc
    if type(value) is not dict:
        _fail(f"the {what} is not a JSON object", "malformed")
    return value


def _numeric_date(value: Any, name: str) -> float:
    """RFC 7519 NumericDate: a finite JSON number (``true`` is not one, nor is ``1e400``)."""
    kind = type(value)
    if kind is float:
        result: float = value
    elif kind is int:
        try:
            result = float(value)
        except OverflowError:
            result = math.inf
    else:
        result = math.nan
    if not math.isfinite(result):
        _fail(f"claim {name!r} must be a number", "malformed")
    return result


def _expected(audience: str | Iterable[str]) -> str | frozenset[str]:
    return audience if isinstance(audience, str) else frozenset(audience)


@dataclass(frozen=True)
class JwtSvid:
    """A verified JWT-SVID (STANDARDS.md §3). ``repr`` leaves the bearer token out."""

    spiffe_id: SpiffeId
    audience: tuple[str, ...]
    expiry: float
    claims: Mapping[str, Any] = field(compare=False)
    token: str = field(repr=False)
    key_id: str

    @property
    def trust_domain(self) -> TrustDomain:
        return self.spiffe_id.trust_domain


def _new_svid(
    spiffe_id: SpiffeId,
    audience: tuple[str, ...],
    expiry: float,
    claims: Mapping[str, Any],
    token: str,
    key_id: str,
) -> JwtSvid:
    # The frozen dataclass ``__init__`` sets each field through ``object.__setattr__``; with
    # values already checked here, one ``__dict__`` update is a measurable share of the cost.
    svid = object.__new__(JwtSvid)
    svid.__dict__.update(
        spiffe_id=spiffe_id,
        audience=audience,
        expiry=expiry,
        claims=claims,
        token=token,
        key_id=key_id,
    )
    return svid


# A verified token, the key that verified it and its ``nbf``: what a cache hit re-checks.
_Verified = tuple[JwtSvid, PublicKey, float | None]


def _check_header(header: dict[str, Any]) -> tuple[str, str]:
    """STANDARDS.md §3.4 steps 1 to 3 (and ``kid``): the header's ``alg`` and ``kid``."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        _fail("the 'alg' of the token is not allowed for JWT-SVIDs", "alg_not_allowed")
    extra = header.keys() - _HEADER_PARAMS
    if extra:
        _fail(f"header parameter(s) {sorted(extra)[:5]!r} are not allowed", "forbidden_header")
    if "typ" in header and header["typ"] not in _TYPES:
        _fail("header 'typ' must be 'JWT' or 'JOSE'", "bad_typ")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        _fail("header 'kid' is required", "missing_kid")
    return alg, kid


# Memos of pure functions of their input (a header segment, a ``sub`` string); failures are
# never stored, and a full memo is simply emptied.
_MEMO_SIZE = 1024
_headers: dict[str, tuple[str, str]] = {}
_parse_subject = functools.lru_cache(maxsize=_MEMO_SIZE)(SpiffeId.parse)


def _verify(
    token: str, bundles: BundleSource, expected: str | frozenset[str], now: float, leeway: float
) -> _Verified:
    """STANDARDS.md §3.4, steps 1 to 8, in that order; crypto only after every cheap check."""
    parts = token.split(".") if type(token) is str and len(token) <= MAX_TOKEN_LENGTH else ()
    # "+", "/" and "=" are the only characters outside base64url that the strict decoder of
    # each segment would let through after translation; everything else fails there.
    if len(parts) != 3 or "+" in token or "/" in token or "=" in token:
        _fail("not a JWS compact serialization", "malformed")
    header_b64, payload_b64, signature_b64 = parts

    cached_header = _headers.get(header_b64)
    if cached_header is None:
        cached_header = _check_header(_json_object(header_b64, "JOSE header", _HEADER_JSON))
        if len(_headers) >= _MEMO_SIZE:
            _headers.clear()
        _headers[header_b64] = cached_header
    alg, kid = cached_header

    claims = _json_object(payload_b64, "claims set", _CLAIMS_JSON)
    try:
        sub, aud, exp = claims["sub"], claims["aud"], claims["exp"]
    except KeyError as exc:
        raise JwtSvidError(f"claim {exc.args[0]!r} is required", reason="missing_claim") from None
    if type(sub) is not str:
        _fail("claim 'sub' must be a string", "bad_subject")
    try:
        spiffe_id = _parse_subject(sub)
    except SpiffeIdError as exc:
        raise JwtSvidError(f"claim 'sub' is not a SPIFFE ID: {exc}", reason="bad_subject") from exc
    if type(aud) is str:
        audience: tuple[str, ...] = (aud,)
    elif type(aud) is list and all(type(a) is str for a in aud):
        audience = tuple(aud)
    else:
        _fail("claim 'aud' must be a string or an array of strings", "malformed")
    expiry = _numeric_date(exp, "exp")
    nbf = claims.get("nbf")
    not_before = None if nbf is None else _numeric_date(nbf, "nbf")

    bundle = bundles.get_bundle_for_trust_domain(spiffe_id.trust_domain)
    if bundle is None:
        _fail(f"no bundle for trust domain {spiffe_id.trust_domain}", "untrusted_trust_domain")
    authority = bundle.jwt_authority(kid)
    if authority is None:
        _fail(
            f"key ID {kid[:64]!r} is not a JWT authority of {spiffe_id.trust_domain}",
            "unknown_kid",
        )
    key = authority.public_key
    algorithm = _ALGORITHMS[alg]
    if not algorithm.key_fits(key):
        _fail(f"{alg} does not match the type of key {kid[:64]!r}", "alg_not_allowed")
    signing_input = token[: len(header_b64) + len(payload_b64) + 1].encode("ascii")
    try:
        signature = _b64(signature_b64)
    except ValueError as exc:
        raise JwtSvidError("the signature is not base64url", reason="malformed") from exc
    if not algorithm.verify(key, signing_input, signature):
        _fail("the signature does not verify", "bad_signature")

    svid = _new_svid(spiffe_id, audience, expiry, MappingProxyType(claims), token, kid)
    _check_time_and_audience(svid, not_before, expected, now, leeway)
    return svid, key, not_before


def _check_time_and_audience(
    svid: JwtSvid, nbf: float | None, expected: str | frozenset[str], now: float, leeway: float
) -> None:
    if now >= svid.expiry + leeway:
        _fail("the token has expired", "expired")
    if nbf is not None and now + leeway < nbf:
        _fail("the token is not valid yet", "not_yet_valid")
    if (
        expected not in svid.audience
        if isinstance(expected, str)
        else expected.isdisjoint(svid.audience)
    ):
        _fail("the token is not meant for this audience", "audience_mismatch")


def verify_jwt_svid(
    token: str,
    bundles: BundleSource,
    audience: str | Iterable[str],
    *,
    now: float,
    leeway: float = 0,
) -> JwtSvid:
    """Validate a JWT-SVID per STANDARDS.md §3.4 against the bundle of its ``sub``'s trust domain.

    ``audience`` is the value (or values) this validator accepts; one of them must be in the
    token's ``aud``. ``now`` is POSIX seconds; ``leeway`` widens ``exp`` and ``nbf``.
    Raises :class:`JwtSvidError` whose ``reason`` is one of ``malformed``, ``alg_not_allowed``,
    ``bad_typ``, ``forbidden_header``, ``missing_kid``, ``missing_claim``, ``bad_subject``,
    ``untrusted_trust_domain``, ``unknown_kid``, ``bad_signature``, ``expired``,
    ``not_yet_valid``, ``audience_mismatch``.
    """
    return _verify(token, bundles, _expected(audience), now, leeway)[0]


class JwtSvidValidator:
    """:func:`verify_jwt_svid` with a bounded LRU cache of verified tokens.

    A cache hit re-checks what can change after verification: the time (``exp``, ``nbf``),
    the audience asked for, and that the bundle served now for the token's trust domain
    still holds the token's ``kid`` with the same public key. Failures are never cached.
    """

    def __init__(
        self,
        bundles: BundleSource,
        *,
        clock: Clock,
        cache_size: int = 10_000,
        leeway: float = 0,
    ) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        self._bundles = bundles
        self._clock = clock
        self._cache_size = cache_size
        self._leeway = leeway
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def cache_entries(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def validate(self, token: str, audience: str | Iterable[str]) -> JwtSvid:
        expected = _expected(audience)
        now = self._clock.timestamp()
        with self._lock:
            hit = self._cache.get(token)
            if hit is not None:
                self._cache.move_to_end(token)
        if hit is not None:
            svid, key, not_before = hit
            if self._still_trusted(svid, key):
                if now >= svid.expiry + self._leeway:
                    self._evict(token)
                _check_time_and_audience(svid, not_before, expected, now, self._leeway)
                return svid
            self._evict(token)
        verified = _verify(token, self._bundles, expected, now, self._leeway)
        if self._cache_size:
            with self._lock:
                self._cache[token] = verified
                self._cache.move_to_end(token)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return verified[0]

    def _still_trusted(self, svid: JwtSvid, key: PublicKey) -> bool:
        bundle = self._bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        authority = bundle.jwt_authority(svid.key_id) if bundle is not None else None
        return authority is not None and (
            authority.public_key is key or authority.public_key == key
        )

    def _evict(self, token: str) -> None:
        with self._lock:
            self._cache.pop(token, None)


class JwtSvidCache:
    """:func:`verify_jwt_svid` with a bounded LRU cache of verified tokens keyed by their
    SHA-256 digest, for callers that pass the bundle source and the time on every call.

    A hit re-checks, against the ``bundles`` and ``now`` of that call, what can change after
    verification: that the bundle of the token's trust domain still holds its ``kid`` with
    the same public key (a rotated-out or removed key invalidates the entry at once), the
    expiry and ``nbf`` (with ``leeway``) and the audience. The cached signature was checked
    against that very key, so a hit is as strong as a fresh verification. Failures are never
    cached; an entry found expired is dropped.
    """

    def __init__(self, *, size: int = 10_000) -> None:
        if size < 0:
            raise ValueError("size must not be negative")
        self._size = size
        self._cache: OrderedDict[bytes, _Verified] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def verify(
        self,
        token: str,
        bundles: BundleSource,
        audience: str | Iterable[str],
        *,
        now: float,
        leeway: float = 0,
    ) -> JwtSvid:
        """As :func:`verify_jwt_svid`, served from the cache when the token was verified
        before and still passes the checks of the class docstring."""
        expected = _expected(audience)
        if not self._size or type(token) is not str or len(token) > MAX_TOKEN_LENGTH:
            return _verify(token, bundles, expected, now, leeway)[0]
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None:
                self._cache.move_to_end(digest)
        if hit is not None:
            svid, key, not_before = hit
            bundle = bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
            authority = bundle.jwt_authority(svid.key_id) if bundle is not None else None
            if authority is not None and (
                authority.public_key is key or authority.public_key == key
            ):
                if now >= svid.expiry + leeway:
                    self._evict(digest)
                _check_time_and_audience(svid, not_before, expected, now, leeway)
                return svid
            self._evict(digest)
        verified = _verify(token, bundles, expected, now, leeway)
        with self._lock:
            self._cache[digest] = verified
            self._cache.move_to_end(digest)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return verified[0]

    def _evict(self, digest: bytes) -> None:
        with self._lock:
            self._cache.pop(digest, None)
