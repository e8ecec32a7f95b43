"""OAuth scopes as operations: the grammar, ``allows`` and narrowing by inclusion."""

from __future__ import annotations

import pytest

from tabard.policy import MAX_SCOPE_TOKENS, OperationKind, Scope, ScopeError, operation_token


def test_operation_tokens_name_kind_and_operation() -> None:
    assert operation_token(OperationKind.TOOLS, "jira.create_issue") == "tools:jira.create_issue"
    assert operation_token("http", "GET:/repos/x") == "http:GET:/repos/x"
    with pytest.raises(ValueError):
        operation_token("files", "x")


def test_parse_unrestricted_empty_and_bad_tokens() -> None:
    assert Scope.parse(None) == Scope.unrestricted() and not Scope.parse(None).restricted
    empty = Scope.parse("")
    assert empty.restricted and not empty.allows("tools:x")
    assert str(Scope.parse("tools:b  tools:a")) == "tools:a tools:b"
    assert Scope.parse(None).claim() is None and Scope.parse("a").claim() == "a"
    for bad in ('tools:"x"', "tools:a\\b"):
        with pytest.raises(ScopeError):
            Scope.parse(bad)
    with pytest.raises(ScopeError):
        Scope.of(f"t{i}" for i in range(MAX_SCOPE_TOKENS + 1))


def test_allows_by_glob_within_one_kind() -> None:
    scope = Scope.parse("tools:jira.* http:GET:/repos/* a2a:billing openid")
    assert scope.allows("tools:jira.create_issue")
    assert not scope.allows("tools:github.create_pr")
    assert scope.allows("http:GET:/repos/tabard/pulls")
    assert not scope.allows("http:POST:/repos/tabard")
    assert scope.allows("a2a:billing") and not scope.allows("a2a:billing-2")
    assert not scope.allows("resources:jira.x")  # another kind never matches
    assert scope.allows("openid") and not scope.allows("openid2")  # opaque: equality
    assert Scope.unrestricted().allows("tools:anything")


def test_narrowing_keeps_inclusion_and_refuses_widening() -> None:
    parent = Scope.parse("tools:jira.* http:GET:/repos/*")
    child = parent.narrow(Scope.parse("tools:jira.search http:GET:/repos/tabard/*"))
    assert child == Scope.parse("tools:jira.search http:GET:/repos/tabard/*")
    assert parent.narrow(Scope.unrestricted()) is parent
    with pytest.raises(ScopeError, match="tools:github"):
        parent.narrow(Scope.parse("tools:jira.search tools:github.*"))
    with pytest.raises(ScopeError):
        parent.narrow(Scope.parse("tools:*"))  # a wider glob is a widening
    assert parent.covers(Scope.parse("tools:jira.a*"))
    assert not parent.covers(Scope.unrestricted())
    assert Scope.unrestricted().covers(Scope.unrestricted())


def test_intersection_keeps_what_both_grant() -> None:
    a = Scope.parse("tools:jira.* tools:github.read")
    b = Scope.parse("tools:jira.search tools:github.*")
    assert a.intersect(b) == Scope.parse("tools:jira.search tools:github.read")
    assert a.intersect(Scope.unrestricted()) == a
    assert Scope.unrestricted().intersect(b) == b
    assert a.intersect(Scope.parse("")) == Scope.parse("")
