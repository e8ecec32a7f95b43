"""Bundles are checked before they are accepted: every problem named with its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tabard.policy import CEDAR_SCHEMA, PolicyBundle, PolicyBundleError, compile_bundle, read_bundle
from tests.unit.policy.conftest import EXAMPLE

CATALOG = "tools:\n  jira.search: {category: jira}\n"


def problems(files: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(PolicyBundleError) as caught:
        compile_bundle(PolicyBundle.of(files))
    assert caught.value.code == "invalid_policy"
    return caught.value.problems


def test_the_example_compiles_with_ids_obligations_and_thresholds() -> None:
    compiled = compile_bundle(read_bundle(EXAMPLE))
    scanner = compiled.policies["security-scanner"]
    assert (scanner.file, scanner.effect, scanner.obligations, scanner.approval_above) == (
        "people.cedar", "permit", frozenset({"redact"}), 50)
    assert compiled.policies["deploy-needs-release-manager"].effect == "forbid"
    assert compiled.catalog.tools["deploy.release"].mutating
    assert len(compiled.entities) > len(compiled.catalog.tools)
    assert 'namespace Tabard' in CEDAR_SCHEMA and '"tools/call"' in CEDAR_SCHEMA


def test_schema_violations_and_parse_errors_name_file_and_policy() -> None:
    found = problems({
        "catalog.yaml": CATALOG,
        "a.cedar": 'permit(principal, action == Tabard::Action::"tools/call", resource) '
                   "when { resource.colour == 1 };",
        "b.cedar": "permit(principal, action, resource) when {",
        "c.cedar": '@id("typo") permit(principal in Tabard::Grop::"x", action, resource);',
    })
    assert any(p.startswith("a.cedar: policy 'a.cedar#1': attribute `colour`") for p in found)
    assert any(p.startswith("b.cedar: ") and "parse error" in p for p in found)
    assert any(p.startswith("c.cedar: policy 'typo': ") for p in found), found


def test_ids_annotations_and_templates() -> None:
    found = problems({
        "a.cedar": '@id("same") permit(principal, action, resource);',
        "b.cedar": '@id("same") permit(principal, action, resource);\n'
                   '@obligation("shred") permit(principal, action, resource);\n'
                   '@approval_above("high") permit(principal, action, resource);\n'
                   '@obligation("redact") forbid(principal, action, resource);',
        "c.cedar": "permit(principal == ?principal, action, resource);",
    })
    assert "b.cedar: policy id 'same' is used in a.cedar too" in found
    assert any(p.startswith("b.cedar: policy 'b.cedar#2': @obligation") for p in found)
    assert any(p.startswith("b.cedar: policy 'b.cedar#3': @approval_above") for p in found)
    assert any(p.startswith("b.cedar: policy 'b.cedar#4': obligations") for p in found)
    assert any(p.startswith("c.cedar: templates") for p in found)


def test_catalog_and_file_name_problems() -> None:
    assert problems({"catalog.yaml": "tools:\n  x: {risk: high, colour: red}\n"
                                     "gadgets: []\n"}) == (
        "catalog.yaml: unknown key 'gadgets' (tools, resources, prompts, a2a_agents, "
        "http_routes)",
        "catalog.yaml: tools.x: unknown key 'colour' (category, server, mutating, risk)",
        "catalog.yaml: tools.x.risk: must be an integer from 0 to 1000000")
    assert problems({"catalog.yaml": "tools: ["})[0].startswith("catalog.yaml: cannot be "
                                                                "parsed")
    assert problems({"catalog.json": "{}", "catalog.yaml": ""}) == (
        "catalog.json, catalog.yaml: a bundle has one catalog",)
    assert problems({"notes.txt": ""})[0].startswith("notes.txt: a bundle holds only")
    assert problems({"catalog.yaml": "http_routes:\n  r: {path: relative}\n"}) == (
        "catalog.yaml: http_routes.r needs exactly a path starting with /",)


def test_read_bundle_takes_cedar_files_and_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "a.cedar").write_text("permit(principal, action, resource);")
    (tmp_path / "catalog.json").write_text('{"a2a_agents": ["billing"]}')
    (tmp_path / "README.md").write_text("ignored")
    bundle = read_bundle(tmp_path)
    assert bundle.names == ("a.cedar", "catalog.json")
    assert compile_bundle(bundle).catalog.a2a_agents == frozenset({"billing"})
    assert bundle.sha256 == PolicyBundle.of(bundle.as_dict()).sha256
    assert bundle.sha256 != PolicyBundle.of({"a.cedar": ""}).sha256
    with pytest.raises(PolicyBundleError, match="not a directory"):
        read_bundle(tmp_path / "missing")
