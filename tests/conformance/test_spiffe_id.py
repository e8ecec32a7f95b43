"""STANDARDS.md §1.7: the SPIFFE ID test table, row for row."""

from __future__ import annotations

import pytest

from tabard.spiffe import SpiffeId, SpiffeIdError

VALID = [
    ("spiffe://example.org", "example.org", ""),
    ("spiffe://example.org/ns/prod/sa/web", "example.org", "/ns/prod/sa/web"),
    ("spiffe://10.0.0.1/svc", "10.0.0.1", "/svc"),
    ("spiffe://td_1.example-x/a.b-c_d", "td_1.example-x", "/a.b-c_d"),
    ("spiffe://example.org/.../x", "example.org", "/.../x"),
]

INVALID = [
    ("spiffe://Example.org/x", "uppercase in trust domain"),
    ("SPIFFE://example.org/x", "scheme not in canonical form"),  # see deviations.py
    ("spiffe://example.org/", "trailing slash"),
    ("spiffe://example.org//x", "empty segment"),
    ("spiffe://example.org/a/../b", "dot segment"),
    ("spiffe://example.org/a%20b", "percent-encoding"),
    ("spiffe://example.org:443/x", "port"),
    ("spiffe://user@example.org/x", "userinfo"),
    ("spiffe://example.org/x?y=1", "query"),
    ("spiffe://example.org/x#f", "fragment"),
    ("spiffe:///x", "empty trust domain"),
    ("spiffe://[::1]/x", "IPv6 literal"),
    ("https://example.org/x", "wrong scheme"),
]


@pytest.mark.parametrize(("value", "trust_domain", "path"), VALID)
def test_valid(value: str, trust_domain: str, path: str) -> None:
    spiffe_id = SpiffeId.parse(value)
    assert spiffe_id.trust_domain.name == trust_domain
    assert spiffe_id.path == path
    assert str(spiffe_id) == value


@pytest.mark.parametrize(("value", "why"), INVALID)
def test_invalid(value: str, why: str) -> None:
    with pytest.raises(SpiffeIdError):
        SpiffeId.parse(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "cannot be empty"),
        ("https://example.org/x", "scheme is missing or invalid"),
        ("spiffe:///x", "trust domain is missing"),
        ("spiffe://Example.org/x", "trust domain characters are limited"),
        ("spiffe://example.org/a b", "path segment characters are limited"),
        ("spiffe://example.org/a/./b", "path cannot contain dot segments"),
        ("spiffe://example.org//x", "path cannot contain empty segments"),
        ("spiffe://example.org/x/", "path cannot have a trailing slash"),
    ],
)
def test_error_messages_name_the_rule(value: str, message: str) -> None:
    with pytest.raises(SpiffeIdError, match=message):
        SpiffeId.parse(value)
