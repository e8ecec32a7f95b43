"""SPIFFE IDs and trust domain names, parsed exactly as the SPIFFE ID specification says.

Spec: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md (Stable).
Parsing follows the strict reading that go-spiffe uses: the ``spiffe://`` prefix must be
exact lowercase bytes and the trust domain lowercase, so two parsed IDs compare byte for byte.
Each failure raises :class:`SpiffeIdError` whose message names the rule broken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tabard.spiffe.errors import SpiffeIdError

__all__ = [
    "MAX_ID_LENGTH",
    "SpiffeId",
    "TrustDomain",
    "match_any",
    "match_id",
    "match_member_of",
    "match_one_of",
]

SCHEME_PREFIX = "spiffe://"
MAX_ID_LENGTH = 2048
MAX_TRUST_DOMAIN_LENGTH = 255

_TD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")
_SEG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")

ERR_EMPTY = "cannot be empty"
ERR_SCHEME = "scheme is missing or invalid"
ERR_TD_MISSING = "trust domain is missing"
ERR_TD_CHARS = (
    "trust domain characters are limited to lowercase letters, numbers, dots, dashes, "
    "and underscores"
)
ERR_TD_LONG = "trust domain cannot be longer than 255 bytes"
ERR_PATH_CHARS = (
    "path segment characters are limited to letters, numbers, dots, dashes, and underscores"
)
ERR_DOT_SEGMENT = "path cannot contain dot segments"
ERR_EMPTY_SEGMENT = "path cannot contain empty segments"
ERR_TRAILING_SLASH = "path cannot have a trailing slash"
ERR_LEADING_SLASH = "path must have a leading slash"
ERR_TOO_LONG = "SPIFFE ID cannot be longer than 2048 bytes"


def _check_trust_domain(name: str, original: str) -> None:
    if not name:
        raise SpiffeIdError(f"{original!r}: {ERR_TD_MISSING}")
    if len(name.encode()) > MAX_TRUST_DOMAIN_LENGTH:
        raise SpiffeIdError(f"{original!r}: {ERR_TD_LONG}")
    for ch in name:
        if ch not in _TD_CHARS:
            raise SpiffeIdError(f"{original!r}: {ERR_TD_CHARS}")


def _check_path(path: str, original: str) -> None:
    if not path:
        return
    if path[0] != "/":
        raise SpiffeIdError(f"{original!r}: {ERR_LEADING_SLASH}")
    segments = path[1:].split("/")
    for i, segment in enumerate(segments):
        if segment == "":
            if i == len(segments) - 1:
                raise SpiffeIdError(f"{original!r}: {ERR_TRAILING_SLASH}")
            raise SpiffeIdError(f"{original!r}: {ERR_EMPTY_SEGMENT}")
        if segment in (".", ".."):
            raise SpiffeIdError(f"{original!r}: {ERR_DOT_SEGMENT}")
        for ch in segment:
            if ch not in _SEG_CHARS:
                raise SpiffeIdError(f"{original!r}: {ERR_PATH_CHARS}")


@dataclass(frozen=True, slots=True)
class TrustDomain:
    """A trust domain name such as ``example.org``: an opaque, lowercase name."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise SpiffeIdError("trust domain must be a string")
        _check_trust_domain(self.name, self.name)

    @classmethod
    def parse(cls, value: str) -> TrustDomain:
        """Parse a bare name (``example.org``) or a SPIFFE ID (whose trust domain is taken)."""
        if not isinstance(value, str) or not value:
            raise SpiffeIdError(f"trust domain {ERR_EMPTY}")
        if ":/" in value:
            return SpiffeId.parse(value).trust_domain
        return cls(value)

    @property
    def id(self) -> SpiffeId:
        """The trust domain's own SPIFFE ID, ``spiffe://<name>`` (used by its authorities)."""
        return SpiffeId(self, "")

    def id_string(self) -> str:
        return SCHEME_PREFIX + self.name

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return type(other) is TrustDomain and other.name == self.name

    def __hash__(self) -> int:
        return hash(("td", self.name))


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A parsed SPIFFE ID: a trust domain plus a (possibly empty) path.

    Construct with :meth:`parse`, :meth:`from_path` or :meth:`from_segments`; the values are
    validated in every case, so holding a ``SpiffeId`` means holding a valid one.
    """

    trust_domain: TrustDomain
    path: str

    def __post_init__(self) -> None:
        if not isinstance(self.trust_domain, TrustDomain):
            raise SpiffeIdError("trust_domain must be a TrustDomain")
        _check_path(self.path, SCHEME_PREFIX + self.trust_domain.name + self.path)
        if len(SCHEME_PREFIX) + len(self.trust_domain.name) + len(self.path.encode()) > (
            MAX_ID_LENGTH
        ):
            raise SpiffeIdError(ERR_TOO_LONG)

    @classmethod
    def parse(cls, value: str) -> SpiffeId:
        if not isinstance(value, str):
            raise SpiffeIdError("SPIFFE ID must be a string")
        if not value:
            raise SpiffeIdError(f"SPIFFE ID {ERR_EMPTY}")
        if len(value.encode()) > MAX_ID_LENGTH:
            raise SpiffeIdError(ERR_TOO_LONG)
        if not value.startswith(SCHEME_PREFIX):
            raise SpiffeIdError(f"{value!r}: {ERR_SCHEME}")
        rest = value[len(SCHEME_PREFIX) :]
        slash = rest.find("/")
        td_name, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
        _check_trust_domain(td_name, value)
        _check_path(path, value)
        return cls(TrustDomain(td_name), path)

    @classmethod
    def from_path(cls, trust_domain: TrustDomain, path: str) -> SpiffeId:
        return cls(trust_domain, path)

    @classmethod
    def from_segments(cls, trust_domain: TrustDomain, *segments: str) -> SpiffeId:
        for segment in segments:
            if "/" in segment:
                raise SpiffeIdError(f"segment {segment!r}: {ERR_PATH_CHARS}")
        return cls(trust_domain, "".join("/" + s for s in segments))

    @property
    def is_trust_domain_id(self) -> bool:
        """True for ``spiffe://td`` (no path): the ID of a signing authority, never a workload."""
        return self.path == ""

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path[1:].split("/")) if self.path else ()

    def member_of(self, trust_domain: TrustDomain) -> bool:
        return self.trust_domain == trust_domain

    def __str__(self) -> str:
        return SCHEME_PREFIX + self.trust_domain.name + self.path

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is SpiffeId
            and other.trust_domain == self.trust_domain
            and other.path == self.path
        )

    def __hash__(self) -> int:
        return hash(("id", self.trust_domain.name, self.path))


Matcher = Callable[[SpiffeId], bool]


def match_any() -> Matcher:
    return lambda _id: True


def match_id(expected: SpiffeId) -> Matcher:
    return lambda candidate: candidate == expected


def match_one_of(expected: Iterable[SpiffeId]) -> Matcher:
    allowed = frozenset(expected)
    return lambda candidate: candidate in allowed


def match_member_of(trust_domain: TrustDomain) -> Matcher:
    return lambda candidate: candidate.trust_domain == trust_domain
