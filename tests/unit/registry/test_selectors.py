"""Selectors: parsing at the first colon, strict unix kinds, plugin types, matching."""

from __future__ import annotations

import pytest

from tabard.registry import InvalidSelectorError, Selector, matches, parse_selectors

SHA = "0123456789abcdef" * 4


@pytest.mark.parametrize("text", [
    "unix:uid:0", "unix:uid:1000", "unix:uid:4294967295", "unix:gid:20",
    "unix:user:www-data", "unix:user:_svc", "unix:user:machine$", "unix:group:wheel",
    "unix:path:/usr/bin/python3", "unix:path:/opt/app:v2/bin", f"unix:sha256:{SHA}",
    "join_token:3f2a", "k8s:ns:default", "docker:label:com.example:team=a",
    "x509pop:subject:cn:host-1",
])
def test_valid_selectors_round_trip(text: str) -> None:
    selector = Selector.parse(text)
    assert str(selector) == text
    assert Selector.parse(str(selector)) == selector


def test_the_value_keeps_its_colons() -> None:
    selector = Selector.parse("unix:path:/a:b")
    assert (selector.type, selector.value) == ("unix", "path:/a:b")


@pytest.mark.parametrize(("text", "words"), [
    ("nocolon", "type:value"),
    (":value", "type must be"),
    ("Unix:uid:1", "type must be"),
    ("un ix:uid:1", "type must be"),
    ("unix:", "value is empty"),
    ("plugin:", "value is empty"),
    ("unix:uid", "unix:KIND:VALUE"),
    ("unix:pid:1", "unix:KIND:VALUE"),
    ("unix:uid:abc", "decimal"),
    ("unix:uid:-1", "decimal"),
    ("unix:uid:01", "decimal"),
    ("unix:uid:4294967296", "decimal"),
    ("unix:gid:", "decimal"),
    ("unix:user:", "user name"),
    ("unix:user:bad name", "user name"),
    ("unix:group:" + "g" * 40, "group name"),
    ("unix:path:usr/bin/python3", "absolute"),
    ("unix:sha256:" + SHA.upper(), "64 lowercase"),
    ("unix:sha256:" + SHA[:-1], "64 lowercase"),
    ("plugin:a\nb", "control"),
    ("plugin:" + "x" * 5000, "longer than"),
])
def test_invalid_selectors_say_why(text: str, words: str) -> None:
    with pytest.raises(InvalidSelectorError) as info:
        Selector.parse(text)
    assert words in str(info.value)
    assert info.value.code == "invalid_selector"


def test_parse_selectors_sorts_and_deduplicates() -> None:
    parsed = parse_selectors(["unix:uid:1", "unix:gid:2", "unix:uid:1", Selector("a", "b")])
    assert [str(s) for s in parsed] == ["a:b", "unix:gid:2", "unix:uid:1"]


def test_matching_needs_every_selector_of_the_entry() -> None:
    entry = parse_selectors(["unix:uid:1000", "unix:path:/usr/bin/python3"])
    process = parse_selectors(["unix:uid:1000", "unix:gid:1000", "unix:path:/usr/bin/python3"])
    assert matches(entry, process)
    assert not matches(entry, parse_selectors(["unix:uid:1000"]))
    assert not matches((), process)  # an entry without selectors never matches
