"""Registration entries: which SPIFFE ID a workload gets when its selectors match.

An entry names its ``parent_id`` (the node allowed to hand its SVIDs out), the selectors a
process must all show, the SVID lifetimes, DNS names and federation. Its SPIFFE ID may be an
*instance template* (``spiffe://td/agent/trading/instance/{instance}``): every process that
matches then gets an instance ID of its own, minted by the server (see
:mod:`tabard.registry.instances`). The wire form is in ``docs/design/node-api.md``.

Rules enforced when an entry is written (:func:`validate_spec`):

* the SPIFFE ID is in the server's trust domain, is not the trust domain's own ID, and does
  not claim the paths tabard reserves for itself (``/node/...`` are node IDs, ``/tabard/...``
  the server's components): an entry there would let a workload impersonate a node;
* ``{instance}`` appears at most once, as a whole path segment;
* the parent is a SPIFFE ID in the trust domain; there is at least one selector;
* TTLs are positive whole seconds within the authority's maxima; DNS names are host names;
  ``federates_with`` holds other trust domains' names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from tabard.registry.errors import InvalidEntryError
from tabard.registry.selectors import Selector, parse_selectors
from tabard.spiffe import SpiffeId, SpiffeIdError, TrustDomain

__all__ = [
    "INSTANCE_PLACEHOLDER",
    "RESERVED_SEGMENTS",
    "Entry",
    "EntryLimits",
    "EntryPatch",
    "EntrySpec",
    "IdTemplate",
    "ValidEntry",
    "validate_spec",
]

INSTANCE_PLACEHOLDER = "{instance}"
RESERVED_SEGMENTS = ("node", "tabard")
"""First path segments an entry may not use: node IDs and tabard's own components."""

MAX_DNS_NAMES = 32
MAX_FEDERATES_WITH = 32
MAX_HINT_LENGTH = 256
MAX_SELECTORS = 64
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]*")
_STAND_IN = "x"  # a valid segment that replaces the placeholder while parsing
_T = TypeVar("_T")


def _pick(new: _T | None, old: _T) -> _T:
    return old if new is None else new


@dataclass(frozen=True, slots=True)
class IdTemplate:
    """An entry's SPIFFE ID: a plain ID, or a template with one ``{instance}`` segment."""

    text: str
    trust_domain: TrustDomain = field(init=False, compare=False, repr=False)
    is_template: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InvalidEntryError("spiffe_id must be a string")
        count = self.text.count(INSTANCE_PLACEHOLDER)
        if count > 1:
            raise InvalidEntryError(f"spiffe_id {self.text!r}: {{instance}} may appear only once")
        try:
            parsed = SpiffeId.parse(self.text.replace(INSTANCE_PLACEHOLDER, _STAND_IN))
        except SpiffeIdError as exc:
            raise InvalidEntryError(f"spiffe_id: {exc}") from None
        if count and INSTANCE_PLACEHOLDER not in self.text.split("/")[3:]:
            raise InvalidEntryError(
                f"spiffe_id {self.text!r}: {{instance}} must be a whole path segment"
            )
        object.__setattr__(self, "trust_domain", parsed.trust_domain)
        object.__setattr__(self, "is_template", count == 1)

    @property
    def path(self) -> str:
        """The path, placeholder included (``/agent/a/instance/{instance}``)."""
        rest = self.text[len("spiffe://") :]
        slash = rest.find("/")
        return "" if slash < 0 else rest[slash:]

    @property
    def segments(self) -> tuple[str, ...]:
        path = self.path
        return tuple(path[1:].split("/")) if path else ()

    @property
    def agent_name(self) -> str | None:
        """The segment after ``/agent/`` (``trading`` in ``/agent/trading/...``), if any."""
        segments = self.segments
        for i, segment in enumerate(segments[:-1]):
            if segment == "agent" and segments[i + 1] != INSTANCE_PLACEHOLDER:
                return segments[i + 1]
        return None

    def spiffe_id(self) -> SpiffeId:
        """The ID of a plain entry; a template has none until it is resolved."""
        if self.is_template:
            raise InvalidEntryError(f"{self.text} is a template; resolve it with an instance")
        return SpiffeId.parse(self.text)

    def resolve(self, instance_id: str) -> SpiffeId:
        """The template with ``{instance}`` replaced by ``instance_id``."""
        if not self.is_template:
            raise InvalidEntryError(f"{self.text} is not an instance template")
        if not instance_id or "/" in instance_id:
            raise InvalidEntryError(f"instance id {instance_id!r} is not one path segment")
        try:
            return SpiffeId.parse(self.text.replace(INSTANCE_PLACEHOLDER, instance_id))
        except SpiffeIdError as exc:
            raise InvalidEntryError(f"instance id {instance_id!r}: {exc}") from None

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class EntryLimits:
    """The authority's SVID lifetimes: defaults for new entries and the caps for all."""

    x509_svid_ttl: timedelta = timedelta(hours=1)
    jwt_svid_ttl: timedelta = timedelta(minutes=5)
    max_x509_svid_ttl: timedelta = timedelta(hours=24)
    max_jwt_svid_ttl: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """A stored registration entry. ``revision`` is its parent's revision after the last write.

    TTLs are whole seconds, as on the wire; times are timezone-aware UTC.
    """

    id: str
    spiffe_id: IdTemplate
    parent_id: SpiffeId
    selectors: tuple[Selector, ...]
    x509_svid_ttl: int
    jwt_svid_ttl: int
    dns_names: tuple[str, ...] = ()
    federates_with: tuple[TrustDomain, ...] = ()
    hint: str = ""
    revision: int = 0
    created_at: datetime
    updated_at: datetime

    @property
    def is_template(self) -> bool:
        return self.spiffe_id.is_template

    @property
    def agent_name(self) -> str | None:
        return self.spiffe_id.agent_name

    def with_revision(self, revision: int) -> Entry:
        return replace(self, revision=revision)


@dataclass(frozen=True, slots=True, kw_only=True)
class EntrySpec:
    """What an admin asks for: raw values, validated by :func:`validate_spec`."""

    spiffe_id: str
    parent_id: str
    selectors: Sequence[str]
    x509_svid_ttl: int | None = None
    jwt_svid_ttl: int | None = None
    dns_names: Sequence[str] = ()
    federates_with: Sequence[str] = ()
    hint: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryPatch:
    """An update: ``None`` leaves a field as it is."""

    spiffe_id: str | None = None
    parent_id: str | None = None
    selectors: Sequence[str] | None = None
    x509_svid_ttl: int | None = None
    jwt_svid_ttl: int | None = None
    dns_names: Sequence[str] | None = None
    federates_with: Sequence[str] | None = None
    hint: str | None = None

    def apply(self, entry: Entry) -> EntrySpec:
        """The full spec that results from applying this patch to ``entry``."""

        return EntrySpec(
            spiffe_id=_pick(self.spiffe_id, entry.spiffe_id.text),
            parent_id=_pick(self.parent_id, str(entry.parent_id)),
            selectors=_pick(self.selectors, [str(s) for s in entry.selectors]),
            x509_svid_ttl=_pick(self.x509_svid_ttl, entry.x509_svid_ttl),
            jwt_svid_ttl=_pick(self.jwt_svid_ttl, entry.jwt_svid_ttl),
            dns_names=_pick(self.dns_names, list(entry.dns_names)),
            federates_with=_pick(self.federates_with,
                                [td.name for td in entry.federates_with]),
            hint=_pick(self.hint, entry.hint),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidEntry:
    """A spec that passed every rule, in canonical form (selectors sorted, names lowercase)."""

    spiffe_id: IdTemplate
    parent_id: SpiffeId
    selectors: tuple[Selector, ...]
    x509_svid_ttl: int
    jwt_svid_ttl: int
    dns_names: tuple[str, ...]
    federates_with: tuple[TrustDomain, ...]
    hint: str


def _entry_id(text: str, trust_domain: TrustDomain) -> IdTemplate:
    template = IdTemplate(text)
    if template.trust_domain != trust_domain:
        raise InvalidEntryError(
            f"spiffe_id {text!r} is not in trust domain {trust_domain.name}"
        )
    if not template.path:
        raise InvalidEntryError("spiffe_id: the trust domain's own ID cannot be an entry's ID")
    if template.segments[0] in RESERVED_SEGMENTS:
        raise InvalidEntryError(
            f"spiffe_id {text!r}: paths under /{template.segments[0]}/ are reserved for tabard"
        )
    return template


def _parent_id(text: str, trust_domain: TrustDomain) -> SpiffeId:
    try:
        parent = SpiffeId.parse(text)
    except SpiffeIdError as exc:
        raise InvalidEntryError(f"parent_id: {exc}") from None
    if parent.trust_domain != trust_domain:
        raise InvalidEntryError(f"parent_id {text!r} is not in trust domain {trust_domain.name}")
    if parent.is_trust_domain_id:
        raise InvalidEntryError("parent_id: the trust domain's own ID cannot be a parent")
    return parent


def _ttl(name: str, value: int | None, default: timedelta, maximum: timedelta) -> int:
    if value is None:
        return int(default.total_seconds())
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidEntryError(f"{name} must be a positive number of seconds")
    if value > maximum.total_seconds():
        raise InvalidEntryError(
            f"{name} of {value}s exceeds the authority's maximum of "
            f"{int(maximum.total_seconds())}s"
        )
    return value


def _dns_name(name: str) -> str:
    if not isinstance(name, str):
        raise InvalidEntryError("dns_names must be strings")
    lowered = name.lower().removesuffix(".")
    labels = lowered.split(".")
    if labels and labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if len(lowered) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidEntryError(f"dns name {name!r} is not a valid host name")
    return lowered


def _trust_domains(values: Iterable[str], own: TrustDomain) -> tuple[TrustDomain, ...]:
    out: set[TrustDomain] = set()
    for value in values:
        try:
            td = TrustDomain(value)
        except SpiffeIdError as exc:
            raise InvalidEntryError(f"federates_with: {exc}") from None
        if td == own:
            raise InvalidEntryError("federates_with: an entry cannot federate with its own "
                                    "trust domain")
        out.add(td)
    return tuple(sorted(out, key=lambda td: td.name))


def validate_spec(spec: EntrySpec, trust_domain: TrustDomain, limits: EntryLimits) -> ValidEntry:
    """Check every rule of the module docstring; returns the canonical form."""
    spiffe_id = _entry_id(spec.spiffe_id, trust_domain)
    parent_id = _parent_id(spec.parent_id, trust_domain)
    if isinstance(spec.selectors, str):
        raise InvalidEntryError("selectors must be a list")
    selectors = parse_selectors(spec.selectors)
    if not selectors:
        raise InvalidEntryError("an entry needs at least one selector")
    if len(selectors) > MAX_SELECTORS:
        raise InvalidEntryError(f"an entry has at most {MAX_SELECTORS} selectors")
    if isinstance(spec.dns_names, str) or len(spec.dns_names) > MAX_DNS_NAMES:
        raise InvalidEntryError(f"dns_names must be a list of at most {MAX_DNS_NAMES} names")
    dns = tuple(dict.fromkeys(_dns_name(n) for n in spec.dns_names))
    if isinstance(spec.federates_with, str) or len(spec.federates_with) > MAX_FEDERATES_WITH:
        raise InvalidEntryError(
            f"federates_with must be a list of at most {MAX_FEDERATES_WITH} trust domains"
        )
    hint = spec.hint
    if not isinstance(hint, str) or len(hint) > MAX_HINT_LENGTH or not _PRINTABLE.fullmatch(hint):
        raise InvalidEntryError(
            f"hint must be at most {MAX_HINT_LENGTH} printable characters"
        )
    return ValidEntry(
        spiffe_id=spiffe_id,
        parent_id=parent_id,
        selectors=selectors,
        x509_svid_ttl=_ttl("x509_svid_ttl", spec.x509_svid_ttl, limits.x509_svid_ttl,
                           limits.max_x509_svid_ttl),
        jwt_svid_ttl=_ttl("jwt_svid_ttl", spec.jwt_svid_ttl, limits.jwt_svid_ttl,
                          limits.max_jwt_svid_ttl),
        dns_names=dns,
        federates_with=_trust_domains(spec.federates_with, trust_domain),
        hint=hint,
    )
