"""Policy bundles: a directory of ``*.cedar`` files plus one catalog of the static entities.

A bundle is what ``tabard policy apply DIR`` sends and what the server stores as a policy
epoch. Its catalog (``catalog.yaml``, ``catalog.yml`` or ``catalog.json``) declares the
resources policies speak about::

    tools:
      jira.create_issue: {category: jira, server: atlassian, mutating: true, risk: 20}
    resources:
      "file:///docs/handbook": {server: docs}
    prompts:
      triage: {server: support}
    a2a_agents: [billing-agent]
    http_routes:
      repos: {path: "/repos/*"}

:func:`compile_bundle` checks everything before anything is used: file names, the catalog
(entities validated against the schema), and every policy file on its own against the Cedar
schema (``cedarpy.validate_policies``), so each error names its file. Policies get ids from
their ``@id("...")`` annotation, or ``<file>#<n>`` (1-based) without one; ids are unique
across the bundle. Annotations tabard reads on ``permit`` policies:
``@obligation("redact")`` / ``@obligation("read_only")`` (comma-separated for both) and
``@approval_above("50")`` (allow only with human approval when the risk exceeds 50).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy
import yaml

from tabard.policy.errors import PolicyBundleError
from tabard.policy.schema import NAMESPACE, ResourceType, schema

__all__ = [
    "CATALOG_NAMES",
    "Catalog",
    "CompiledBundle",
    "CompiledPolicy",
    "PolicyBundle",
    "ToolSpec",
    "compile_bundle",
    "read_bundle",
]

CATALOG_NAMES = ("catalog.yaml", "catalog.yml", "catalog.json")
MAX_FILES = 256
MAX_BUNDLE_BYTES = 900 * 1024
OBLIGATIONS = frozenset({"redact", "read_only"})
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,512}")
_PARSER_ID = re.compile(r"^for policy `policy\d+`, ")


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """File name → text, sorted by name. ``sha256`` identifies the bundle."""

    files: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, files: Mapping[str, str]) -> PolicyBundle:
        return cls(tuple(sorted(files.items())))

    def as_dict(self) -> dict[str, str]:
        return dict(self.files)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.files)

    @property
    def sha256(self) -> str:
        canonical = json.dumps(self.files, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def read_bundle(directory: Path) -> PolicyBundle:
    """The bundle in ``directory``: its ``*.cedar`` files and its catalog (not recursive)."""
    if not directory.is_dir():
        raise PolicyBundleError([f"{directory}: not a directory"])
    files: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and (path.suffix == ".cedar" or path.name in CATALOG_NAMES):
            try:
                files[path.name] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise PolicyBundleError([f"{path.name}: cannot be read ({exc})"]) from None
    return PolicyBundle.of(files)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    category: str | None = None
    server: str | None = None
    mutating: bool = False
    risk: int = 0


@dataclass(frozen=True, slots=True)
class Catalog:
    tools: Mapping[str, ToolSpec]
    resources: Mapping[str, str | None]
    prompts: Mapping[str, str | None]
    a2a_agents: frozenset[str]
    http_routes: Mapping[str, str]

    def has(self, kind: ResourceType, name: str) -> bool:
        table: Collection[str] = {
            ResourceType.TOOL: self.tools, ResourceType.MCP_RESOURCE: self.resources,
            ResourceType.MCP_PROMPT: self.prompts, ResourceType.A2A_AGENT: self.a2a_agents,
            ResourceType.HTTP_ROUTE: self.http_routes,
        }[kind]
        return name in table

    def entities(self) -> list[dict[str, Any]]:
        """The catalog as Cedar JSON entities."""
        out: list[dict[str, Any]] = []

        def uid(kind: str, name: str) -> dict[str, str]:
            return {"type": f"{NAMESPACE}::{kind}", "id": name}

        def add(kind: str, name: str, attrs: dict[str, Any], parents: Iterable[Any]) -> None:
            out.append({"uid": uid(kind, name), "attrs": attrs, "parents": list(parents)})

        categories = {t.category for t in self.tools.values() if t.category}
        servers = {t.server for t in self.tools.values() if t.server}
        servers |= {s for s in (*self.resources.values(), *self.prompts.values()) if s}
        for category in sorted(categories):
            add("ToolCategory", category, {}, ())
        for server in sorted(servers):
            add("McpServer", server, {}, ())
        for name, tool in sorted(self.tools.items()):
            parents = [uid("ToolCategory", tool.category)] if tool.category else []
            parents += [uid("McpServer", tool.server)] if tool.server else []
            add("Tool", name, {"mutating": tool.mutating, "risk": tool.risk}, parents)
        for kind, members in (("McpResource", self.resources), ("McpPrompt", self.prompts)):
            for member, owner in sorted(members.items()):
                add(kind, member, {}, [uid("McpServer", owner)] if owner else [])
        for name in sorted(self.a2a_agents):
            add("A2aAgent", name, {}, ())
        for name, path in sorted(self.http_routes.items()):
            add("HttpRoute", name, {"path": path}, ())
        return out


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    id: str
    file: str
    effect: str
    obligations: frozenset[str]
    approval_above: int | None


@dataclass(frozen=True)
class CompiledBundle:
    """A bundle ready to decide with: the parsed policy set, the catalog's entities and what
    tabard reads from each policy's annotations."""

    bundle: PolicyBundle
    catalog: Catalog
    policies: Mapping[str, CompiledPolicy]
    policy_set: cedarpy.PolicySet
    entities: cedarpy.Entities


# --- the catalog ------------------------------------------------------------------------------


class _Problems(list[str]):
    pass


def _name(problems: _Problems, where: str, value: object) -> str | None:
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    problems.append(f"{where}: {value!r} is not a name (1-512 printable characters)")
    return None


def _mapping(problems: _Problems, where: str, value: object) -> Mapping[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    problems.append(f"{where}: must be a mapping")
    return {}


def _server_of(problems: _Problems, where: str, spec: object) -> str | None:
    spec = _mapping(problems, where, spec)
    for key in spec:
        if key != "server":
            problems.append(f"{where}: unknown key {key!r} (server)")
    server = spec.get("server")
    return _name(problems, f"{where}.server", server) if server is not None else None


def _tool(problems: _Problems, where: str, spec: object) -> ToolSpec:
    fields = _mapping(problems, where, spec)
    for key in fields:
        if key not in ("category", "server", "mutating", "risk"):
            problems.append(f"{where}: unknown key {key!r} (category, server, mutating, risk)")
    category, server = fields.get("category"), fields.get("server")
    mutating, risk = fields.get("mutating", False), fields.get("risk", 0)
    if not isinstance(mutating, bool):
        problems.append(f"{where}.mutating: must be true or false")
        mutating = False
    if isinstance(risk, bool) or not isinstance(risk, int) or not 0 <= risk <= 1_000_000:
        problems.append(f"{where}.risk: must be an integer from 0 to 1000000")
        risk = 0
    return ToolSpec(
        _name(problems, f"{where}.category", category) if category is not None else None,
        _name(problems, f"{where}.server", server) if server is not None else None,
        mutating, risk)


def parse_catalog(file: str, text: str) -> Catalog:
    problems = _Problems()
    try:
        document = json.loads(text) if file.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PolicyBundleError([f"{file}: cannot be parsed ({exc})"]) from None
    top = _mapping(problems, file, document)
    for key in top:
        if key not in ("tools", "resources", "prompts", "a2a_agents", "http_routes"):
            problems.append(f"{file}: unknown key {key!r} "
                            "(tools, resources, prompts, a2a_agents, http_routes)")
    tools = {n: _tool(problems, f"{file}: tools.{n}", s)
             for n, s in _mapping(problems, f"{file}: tools", top.get("tools")).items()
             if _name(problems, f"{file}: tools", n)}
    resources = {n: _server_of(problems, f"{file}: resources.{n}", s)
                 for n, s in _mapping(problems, f"{file}: resources",
                                      top.get("resources")).items()
                 if _name(problems, f"{file}: resources", n)}
    prompts = {n: _server_of(problems, f"{file}: prompts.{n}", s)
               for n, s in _mapping(problems, f"{file}: prompts", top.get("prompts")).items()
               if _name(problems, f"{file}: prompts", n)}
    agents_value = top.get("a2a_agents") or []
    if not isinstance(agents_value, list):
        problems.append(f"{file}: a2a_agents must be a list of names")
        agents_value = []
    agents = frozenset(a for a in agents_value if _name(problems, f"{file}: a2a_agents", a))
    routes: dict[str, str] = {}
    for name, spec in _mapping(problems, f"{file}: http_routes", top.get("http_routes")).items():
        fields = _mapping(problems, f"{file}: http_routes.{name}", spec)
        path = fields.get("path")
        if not isinstance(path, str) or not path.startswith("/") or set(fields) != {"path"}:
            problems.append(f"{file}: http_routes.{name} needs exactly a path starting with /")
        elif _name(problems, f"{file}: http_routes", name):
            routes[name] = path
    if problems:
        raise PolicyBundleError(problems)
    return Catalog(tools, resources, prompts, agents, routes)


# --- the policies ------------------------------------------------------------------------------


def _annotations(problems: _Problems, file: str, pid: str, effect: str,
                 annotations: Mapping[str, str]) -> tuple[frozenset[str], int | None]:
    obligations: set[str] = set()
    raw = annotations.get("obligation")
    if raw is not None:
        obligations = {o.strip() for o in raw.split(",") if o.strip()}
        unknown = obligations - OBLIGATIONS
        if unknown or not obligations:
            problems.append(f"{file}: policy {pid!r}: @obligation must name redact and/or "
                            f"read_only, not {raw!r}")
    threshold: int | None = None
    raw = annotations.get("approval_above")
    if raw is not None:
        if not raw.isdigit() or len(raw) > 9:
            problems.append(f"{file}: policy {pid!r}: @approval_above must be a non-negative "
                            f"integer, not {raw!r}")
        else:
            threshold = int(raw)
    if effect != "permit" and (obligations or threshold is not None):
        problems.append(f"{file}: policy {pid!r}: obligations and approval thresholds belong "
                        "on permit policies")
    return frozenset(obligations), threshold


def _compile_file(problems: _Problems, file: str, text: str, seen: dict[str, str],
                  policies: dict[str, CompiledPolicy], est: dict[str, Any]) -> None:
    result = cedarpy.validate_policies(text, schema())
    if not result.validation_passed:
        names = result.id_annotations_by_policy_id
        for error in result.errors:
            where = ""
            if error.policy_id:
                number = error.policy_id.removeprefix("policy")
                positional = f"{file}#{int(number) + 1}" if number.isdigit() else (
                    error.policy_id)
                where = f"policy {names.get(error.policy_id) or positional!r}: "
            message = _PARSER_ID.sub("", error.error)
            if f"{file}: {where}{message}" not in problems:
                problems.append(f"{file}: {where}{message}")
        return
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        problems.append(f"{file}: {exc}")
        return
    if parsed.get("templates"):
        problems.append(f"{file}: templates (policies with ?principal or ?resource slots) are "
                        "not supported")
        return
    for index, (_, body) in enumerate(parsed.get("staticPolicies", {}).items(), start=1):
        annotations: dict[str, str] = {k: v or "" for k, v in body.get("annotations",
                                                                        {}).items()}
        pid = annotations.get("id") or f"{file}#{index}"
        if pid in seen:
            problems.append(f"{file}: policy id {pid!r} is used in {seen[pid]} too")
            continue
        seen[pid] = file
        obligations, threshold = _annotations(problems, file, pid, body["effect"], annotations)
        policies[pid] = CompiledPolicy(pid, file, body["effect"], obligations, threshold)
        est[pid] = body


def compile_bundle(bundle: PolicyBundle) -> CompiledBundle:
    """Check and compile a bundle; :class:`PolicyBundleError` lists every problem found."""
    problems = _Problems()
    if len(bundle.files) > MAX_FILES:
        raise PolicyBundleError([f"a bundle has at most {MAX_FILES} files"])
    if sum(len(text.encode()) for _, text in bundle.files) > MAX_BUNDLE_BYTES:
        raise PolicyBundleError([f"a bundle is at most {MAX_BUNDLE_BYTES} bytes"])
    catalogs = [n for n in bundle.names if n in CATALOG_NAMES]
    for name in bundle.names:
        if not _FILE.fullmatch(name) or not (name.endswith(".cedar") or name in CATALOG_NAMES):
            problems.append(f"{name}: a bundle holds only *.cedar files and one catalog "
                            f"({', '.join(CATALOG_NAMES)})")
    if len(catalogs) > 1:
        problems.append(f"{', '.join(catalogs)}: a bundle has one catalog")
    if problems:
        raise PolicyBundleError(problems)
    files = bundle.as_dict()
    catalog = (parse_catalog(catalogs[0], files[catalogs[0]]) if catalogs
               else Catalog({}, {}, {}, frozenset(), {}))
    seen: dict[str, str] = {}
    policies: dict[str, CompiledPolicy] = {}
    est: dict[str, Any] = {}
    for name, text in bundle.files:
        if name.endswith(".cedar"):
            _compile_file(problems, name, text, seen, policies, est)
    try:
        entities = cedarpy.Entities.from_json_str(json.dumps(catalog.entities()),
                                                  schema=schema())
    except ValueError as exc:
        problems.append(f"{catalogs[0] if catalogs else 'catalog'}: {exc}")
    if problems:
        raise PolicyBundleError(problems)
    try:
        policy_set = cedarpy.PolicySet.from_json_str(json.dumps(
            {"staticPolicies": est, "templates": {}, "templateLinks": []}))
    except ValueError as exc:
        raise PolicyBundleError([f"policy set: {exc}"]) from None
    return CompiledBundle(bundle, catalog, policies, policy_set, entities)
