"""Entry validation and instance templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tabard.registry import (
    Entry,
    EntryLimits,
    EntryPatch,
    EntrySpec,
    IdTemplate,
    InvalidEntryError,
    InvalidSelectorError,
    validate_spec,
)
from tabard.spiffe import SpiffeId, TrustDomain

TD = TrustDomain("example.org")
NODE = "spiffe://example.org/node/" + "a" * 32
TEMPLATE = "spiffe://example.org/agent/trading/instance/{instance}"
LIMITS = EntryLimits(x509_svid_ttl=timedelta(hours=1), jwt_svid_ttl=timedelta(minutes=5),
                     max_x509_svid_ttl=timedelta(hours=4), max_jwt_svid_ttl=timedelta(hours=1))


def spec(**changes: object) -> EntrySpec:
    values: dict[str, object] = {"spiffe_id": TEMPLATE, "parent_id": NODE,
                                 "selectors": ["unix:uid:1000"], **changes}
    return EntrySpec(**values)  # type: ignore[arg-type]


def test_template_resolves_its_one_instance_segment() -> None:
    template = IdTemplate(TEMPLATE)
    assert template.is_template and template.agent_name == "trading"
    assert template.resolve("01hx") == SpiffeId.parse(
        "spiffe://example.org/agent/trading/instance/01hx")
    with pytest.raises(InvalidEntryError):
        template.spiffe_id()
    with pytest.raises(InvalidEntryError):
        template.resolve("a/b")


def test_plain_ids_are_not_templates() -> None:
    plain = IdTemplate("spiffe://example.org/agent/billing")
    assert not plain.is_template and plain.agent_name == "billing"
    assert plain.spiffe_id() == SpiffeId.parse("spiffe://example.org/agent/billing")
    with pytest.raises(InvalidEntryError):
        plain.resolve("x")
    assert IdTemplate("spiffe://example.org/web").agent_name is None
    assert IdTemplate("spiffe://example.org/agent/{instance}").agent_name is None


@pytest.mark.parametrize(("text", "words"), [
    ("spiffe://example.org/a/{instance}/b/{instance}", "only once"),
    ("spiffe://example.org/a/x{instance}", "whole path segment"),
    ("spiffe://example.org/a/{instance}x", "whole path segment"),
    ("spiffe://example.org/a/{inst}", "path segment characters"),
    ("spiffe://Example.org/a", "trust domain characters"),
    ("spiffe://example.org/a/../b", "dot segments"),
    ("http://example.org/a", "scheme"),
])
def test_bad_ids_and_templates(text: str, words: str) -> None:
    with pytest.raises(InvalidEntryError) as info:
        IdTemplate(text)
    assert words in str(info.value)


def test_a_valid_spec_takes_the_authority_defaults() -> None:
    valid = validate_spec(spec(dns_names=["API.example.org.", "*.svc.example.org",
                                          "api.example.org"],
                               federates_with=["partner.example", "bank.example"]), TD, LIMITS)
    assert valid.spiffe_id == IdTemplate(TEMPLATE)
    assert valid.parent_id == SpiffeId.parse(NODE)
    assert (valid.x509_svid_ttl, valid.jwt_svid_ttl) == (3600, 300)
    assert valid.dns_names == ("api.example.org", "*.svc.example.org")
    assert [td.name for td in valid.federates_with] == ["bank.example", "partner.example"]


@pytest.mark.parametrize(("changes", "words"), [
    ({"spiffe_id": "spiffe://other.org/agent/a"}, "not in trust domain"),
    ({"spiffe_id": "spiffe://example.org"}, "own ID"),
    ({"spiffe_id": "spiffe://example.org/node/" + "b" * 32}, "reserved"),
    ({"spiffe_id": "spiffe://example.org/tabard/server"}, "reserved"),
    ({"parent_id": "spiffe://other.org/node/x"}, "not in trust domain"),
    ({"parent_id": "spiffe://example.org"}, "own ID"),
    ({"parent_id": "node-1"}, "parent_id"),
    ({"selectors": []}, "at least one selector"),
    ({"selectors": "unix:uid:1"}, "must be a list"),
    ({"x509_svid_ttl": 0}, "positive"),
    ({"x509_svid_ttl": -5}, "positive"),
    ({"jwt_svid_ttl": True}, "positive"),
    ({"x509_svid_ttl": 4 * 3600 + 1}, "exceeds"),
    ({"jwt_svid_ttl": 3601}, "exceeds"),
    ({"dns_names": ["bad_name"]}, "host name"),
    ({"dns_names": ["-lead.example"]}, "host name"),
    ({"dns_names": ["a" * 64 + ".example"]}, "host name"),
    ({"dns_names": ["*.com"]}, "host name"),
    ({"dns_names": [f"h{i}.example" for i in range(33)]}, "at most 32"),
    ({"federates_with": ["example.org"]}, "own trust domain"),
    ({"federates_with": ["Bad_TD"]}, "federates_with"),
    ({"hint": "x" * 257}, "hint"),
    ({"hint": "line\nbreak"}, "hint"),
])
def test_invalid_specs_name_the_rule(changes: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidEntryError) as info:
        validate_spec(spec(**changes), TD, LIMITS)
    assert words in str(info.value)
    assert info.value.code == "invalid_entry"


def test_a_bad_selector_is_a_selector_error() -> None:
    with pytest.raises(InvalidSelectorError):
        validate_spec(spec(selectors=["unix:uid:x"]), TD, LIMITS)


def test_ttls_up_to_the_maximum_are_kept() -> None:
    valid = validate_spec(spec(x509_svid_ttl=4 * 3600, jwt_svid_ttl=1), TD, LIMITS)
    assert (valid.x509_svid_ttl, valid.jwt_svid_ttl) == (4 * 3600, 1)


def test_a_patch_changes_only_what_it_names() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    valid = validate_spec(spec(hint="old", dns_names=["a.example"]), TD, LIMITS)
    entry = Entry(id="e", spiffe_id=valid.spiffe_id, parent_id=valid.parent_id,
                  selectors=valid.selectors, x509_svid_ttl=60, jwt_svid_ttl=30,
                  dns_names=valid.dns_names, federates_with=valid.federates_with,
                  hint=valid.hint, created_at=at, updated_at=at)
    patched = EntryPatch(hint="new", selectors=["unix:uid:1", "unix:gid:1"]).apply(entry)
    assert patched == EntrySpec(spiffe_id=TEMPLATE, parent_id=NODE,
                                selectors=["unix:uid:1", "unix:gid:1"], x509_svid_ttl=60,
                                jwt_svid_ttl=30, dns_names=["a.example"], federates_with=[],
                                hint="new")
    assert EntryPatch().apply(entry).hint == "old"
