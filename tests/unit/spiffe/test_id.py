"""SPIFFE IDs and trust domains beyond the §1.7 table (which is in tests/conformance)."""

from __future__ import annotations

import pytest

from tabard.spiffe import SpiffeId, SpiffeIdError, TrustDomain

TD = TrustDomain("example.org")


def test_an_id_of_exactly_2048_bytes_is_accepted_and_one_more_is_not() -> None:
    prefix = "spiffe://example.org/"
    longest = prefix + "a" * (2048 - len(prefix))
    assert len(longest) == 2048
    assert str(SpiffeId.parse(longest)) == longest
    with pytest.raises(SpiffeIdError, match="2048"):
        SpiffeId.parse(longest + "a")
    with pytest.raises(SpiffeIdError, match="2048"):
        SpiffeId.from_path(TD, "/" + "a" * (2048 - len(prefix) + 1))


def test_a_trust_domain_of_255_bytes_is_accepted_and_256_is_not() -> None:
    assert TrustDomain("a" * 255).name == "a" * 255
    with pytest.raises(SpiffeIdError, match="255"):
        TrustDomain("a" * 256)
    with pytest.raises(SpiffeIdError, match="255"):
        SpiffeId.parse("spiffe://" + "a" * 256 + "/x")


def test_from_segments_joins_and_validates_each_segment() -> None:
    assert SpiffeId.from_segments(TD, "ns", "prod", "sa", "web") == SpiffeId.parse(
        "spiffe://example.org/ns/prod/sa/web"
    )
    assert SpiffeId.from_segments(TD) == TD.id
    assert SpiffeId.from_segments(TD, "a").segments == ("a",)
    for bad in ("a/b", "", ".", "..", "a b", "%41"):
        with pytest.raises(SpiffeIdError):
            SpiffeId.from_segments(TD, "ok", bad)


def test_ids_and_trust_domains_never_equal_strings() -> None:
    spiffe_id = SpiffeId.parse("spiffe://example.org/w")
    assert spiffe_id != "spiffe://example.org/w"
    assert "spiffe://example.org/w" != spiffe_id  # noqa: SIM300 (the reflected comparison)
    assert TD != "example.org"
    assert spiffe_id == SpiffeId.parse("spiffe://example.org/w")
    assert len({spiffe_id, SpiffeId.parse("spiffe://example.org/w")}) == 1
    assert str(spiffe_id) == "spiffe://example.org/w"


def test_trust_domain_parse_takes_a_name_or_an_id() -> None:
    assert TrustDomain.parse("example.org") == TD
    assert TrustDomain.parse("spiffe://example.org/a/b") == TD
    assert TD.id.is_trust_domain_id and TD.id_string() == "spiffe://example.org"
    with pytest.raises(SpiffeIdError):
        TrustDomain.parse("")
    with pytest.raises(SpiffeIdError):
        TrustDomain.parse("Example.org")


def test_member_of_compares_trust_domains() -> None:
    spiffe_id = SpiffeId.parse("spiffe://example.org/w")
    assert spiffe_id.member_of(TD)
    assert not spiffe_id.member_of(TrustDomain("example.com"))
