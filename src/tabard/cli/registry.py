"""Registry commands: registration entries, join tokens, nodes and agent instances."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

import typer

from tabard.cli.client import AdminClient
from tabard.cli.options import JsonOpt, ServerOpt
from tabard.cli.output import console, print_fields, print_json, print_table, when
from tabard.config import format_duration, parse_duration
from tabard.errors import Invalid
from tabard.registry import IdTemplate, InstanceNotFoundError, Selector
from tabard.spiffe import SpiffeId, TrustDomain

__all__ = ["register"]

entry_app = typer.Typer(help="Registration entries: which SPIFFE ID a workload gets.",
                        no_args_is_help=True)
token_app = typer.Typer(help="Join tokens: one-time secrets for node attestation.",
                        no_args_is_help=True)
nodes_app = typer.Typer(help="Attested nodes: list, show, ban.", no_args_is_help=True)
instances_app = typer.Typer(help="Agent instances: every process with an instance identity.",
                            no_args_is_help=True)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NODE_ID = re.compile(r"[0-9a-f]{32}")

SpiffeIdOpt = Annotated[str, typer.Option(
    "--spiffe-id", help="SPIFFE ID, or a template with one {instance} path segment.")]
ParentOpt = Annotated[str, typer.Option(
    "--parent-id", help="The node: its SPIFFE ID, or its node id (or a unique prefix).")]
SelectorsOpt = Annotated[list[str], typer.Option(
    "--selector", "-s", help="type:value, e.g. unix:uid:1000 (repeatable; all must match).")]
X509TtlOpt = Annotated[str | None, typer.Option(
    "--x509-ttl", help="X509-SVID lifetime, e.g. 1h (default: the server's).")]
JwtTtlOpt = Annotated[str | None, typer.Option(
    "--jwt-ttl", help="JWT-SVID lifetime, e.g. 5m (default: the server's).")]
DnsOpt = Annotated[list[str] | None, typer.Option("--dns", help="DNS SAN (repeatable).")]
FederatesOpt = Annotated[list[str] | None, typer.Option(
    "--federates-with", help="Trust domain whose bundle the workload gets (repeatable).")]
HintOpt = Annotated[str | None, typer.Option("--hint", help="Free text for the workload.")]
EntryArg = Annotated[str, typer.Argument(help="Entry id (or a unique prefix of it).")]
NodeArg = Annotated[str, typer.Argument(help="Node id (or a unique prefix of it).")]


def _seconds(flag: str, value: str | None) -> int | None:
    if value is None:
        return None
    seconds = parse_duration(value).total_seconds()
    if seconds < 1 or seconds != int(seconds):
        raise Invalid(f"{flag} must be a whole number of seconds, at least 1s")
    return int(seconds)


def _spiffe_id(value: str) -> str:
    template = IdTemplate(value)
    return template.text


def _selectors(values: list[str]) -> list[str]:
    return [str(Selector.parse(v)) for v in values]


def _resolve(kinds: str, rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    matches = [r for r in rows if str(r["id"]).startswith(key)]
    if len(matches) != 1:
        raise Invalid(f"{key!r} matches {len(matches)} {kinds}; give more of the id")
    return matches[0]


def _parent(client: AdminClient, value: str) -> str:
    if value.startswith("spiffe://"):
        return str(SpiffeId.parse(value))
    if not value or not re.fullmatch(r"[0-9a-f]{1,32}", value):
        raise Invalid(f"--parent-id {value!r} is neither a SPIFFE ID nor a node id")
    if _NODE_ID.fullmatch(value):
        trust_domain = TrustDomain(client.get("/readyz", auth=False)["trust_domain"])
        return f"spiffe://{trust_domain.name}/node/{value}"
    return str(_resolve("nodes", client.get("/api/v1/nodes"), value)["spiffe_id"])


def _entry_id(client: AdminClient, value: str) -> str:
    if _UUID.fullmatch(value):
        return value
    if not value or not re.fullmatch(r"[0-9a-f-]{1,36}", value):
        raise Invalid(f"{value!r} is not an entry id")
    return str(_resolve("entries", client.get("/api/v1/entries"), value)["id"])


def _node_id(client: AdminClient, value: str) -> str:
    if _NODE_ID.fullmatch(value):
        return value
    if not value or not re.fullmatch(r"[0-9a-f]{1,32}", value):
        raise Invalid(f"{value!r} is not a node id")
    return str(_resolve("nodes", client.get("/api/v1/nodes"), value)["id"])


def _ttl(seconds: int) -> str:
    return format_duration(timedelta(seconds=seconds))


def _show_entry(entry: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(entry)
        return
    print_fields({
        "id": entry["id"],
        "SPIFFE ID": entry["spiffe_id"],
        "parent": entry["parent_id"],
        "selectors": ", ".join(entry["selectors"]),
        "X509-SVID TTL": _ttl(entry["x509_svid_ttl"]),
        "JWT-SVID TTL": _ttl(entry["jwt_svid_ttl"]),
        "DNS names": ", ".join(entry["dns_names"]) or "-",
        "federates with": ", ".join(entry["federates_with"]) or "-",
        "hint": entry["hint"] or "-",
        "revision": entry["revision"],
        "created": when(entry["created_at"]),
        "updated": when(entry["updated_at"]),
    })


@entry_app.command("create")
def entry_create(
    spiffe_id: SpiffeIdOpt,
    parent_id: ParentOpt,
    selector: SelectorsOpt,
    x509_ttl: X509TtlOpt = None,
    jwt_ttl: JwtTtlOpt = None,
    dns: DnsOpt = None,
    federates_with: FederatesOpt = None,
    hint: HintOpt = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an entry: processes on the parent node showing every selector get the ID.

    Example: tabard entry create --spiffe-id 'spiffe://example.org/agent/trading/instance/{instance}' --parent-id 3f2a9c1e --selector unix:uid:1000 --selector unix:path:/usr/bin/python3
    """  # noqa: E501
    body: dict[str, Any] = {
        "spiffe_id": _spiffe_id(spiffe_id),
        "selectors": _selectors(selector),
        "x509_svid_ttl": _seconds("--x509-ttl", x509_ttl),
        "jwt_svid_ttl": _seconds("--jwt-ttl", jwt_ttl),
        "dns_names": dns or [],
        "federates_with": federates_with or [],
        "hint": hint or "",
    }
    client = AdminClient(server)
    body["parent_id"] = _parent(client, parent_id)
    _show_entry(client.post("/api/v1/entries", body), json_out)


@entry_app.command("list")
def entry_list(
    parent_id: Annotated[str | None, typer.Option(
        "--parent-id", help="Only the entries of this node (SPIFFE ID or node id).")] = None,
    spiffe_id: Annotated[str | None, typer.Option(
        "--spiffe-id", help="Only entries with exactly this SPIFFE ID or template.")] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List entries, oldest first.

    Example: tabard entry list --parent-id spiffe://example.org/node/3f2a9c1e0b6d4e8f9a1b2c3d4e5f6a7b
    """
    client = AdminClient(server)
    params: dict[str, str] = {}
    if parent_id is not None:
        params["parent_id"] = _parent(client, parent_id)
    if spiffe_id is not None:
        params["spiffe_id"] = _spiffe_id(spiffe_id)
    query = "&".join(f"{k}={_quote(v)}" for k, v in params.items())
    rows: list[dict[str, Any]] = client.get("/api/v1/entries" + (f"?{query}" if query else ""))
    if json_out:
        print_json(rows)
        return
    print_table(
        ["id", "SPIFFE ID", "parent", "selectors", "x509 ttl", "jwt ttl", "rev"],
        [[r["id"][:8], r["spiffe_id"], r["parent_id"], "\n".join(r["selectors"]),
          _ttl(r["x509_svid_ttl"]), _ttl(r["jwt_svid_ttl"]), r["revision"]] for r in rows],
    )


def _quote(value: str) -> str:
    return quote(value, safe="")


@entry_app.command("show")
def entry_show(entry: EntryArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Show one entry.

    Example: tabard entry show 3f2a9c1e
    """
    client = AdminClient(server)
    _show_entry(client.get(f"/api/v1/entries/{_entry_id(client, entry)}"), json_out)


@entry_app.command("update")
def entry_update(
    entry: EntryArg,
    spiffe_id: Annotated[str | None, typer.Option(
        "--spiffe-id", help="New SPIFFE ID or template.")] = None,
    parent_id: Annotated[str | None, typer.Option(
        "--parent-id", help="New parent node (SPIFFE ID or node id).")] = None,
    selector: Annotated[list[str] | None, typer.Option(
        "--selector", "-s", help="New selector set (repeatable; replaces all).")] = None,
    x509_ttl: X509TtlOpt = None,
    jwt_ttl: JwtTtlOpt = None,
    dns: Annotated[list[str] | None, typer.Option(
        "--dns", help="New DNS SANs (repeatable; replaces all).")] = None,
    federates_with: Annotated[list[str] | None, typer.Option(
        "--federates-with", help="New federated trust domains (repeatable; replaces all).")
    ] = None,
    hint: HintOpt = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change an entry; only the given flags change. The node sees it on its next sync.

    Example: tabard entry update 3f2a9c1e --x509-ttl 30m --selector unix:uid:1001
    """
    body: dict[str, Any] = {}
    if spiffe_id is not None:
        body["spiffe_id"] = _spiffe_id(spiffe_id)
    if selector:
        body["selectors"] = _selectors(selector)
    if x509_ttl is not None:
        body["x509_svid_ttl"] = _seconds("--x509-ttl", x509_ttl)
    if jwt_ttl is not None:
        body["jwt_svid_ttl"] = _seconds("--jwt-ttl", jwt_ttl)
    if dns:
        body["dns_names"] = dns
    if federates_with:
        body["federates_with"] = federates_with
    if hint is not None:
        body["hint"] = hint
    client = AdminClient(server)
    if parent_id is not None:
        body["parent_id"] = _parent(client, parent_id)
    if not body:
        raise Invalid("nothing to change: give at least one flag")
    entry_id = _entry_id(client, entry)
    _show_entry(client.request("PATCH", f"/api/v1/entries/{entry_id}", json=body), json_out)


@entry_app.command("delete")
def entry_delete(entry: EntryArg, server: ServerOpt = None) -> None:
    """Delete an entry; its workloads stop getting new SVIDs after the node's next sync.

    Example: tabard entry delete 3f2a9c1e
    """
    client = AdminClient(server)
    entry_id = _entry_id(client, entry)
    client.delete(f"/api/v1/entries/{entry_id}")
    console.print(f"deleted entry {entry_id}")


@token_app.command("generate")
def token_generate(
    ttl: Annotated[str, typer.Option(help="Lifetime of the token, e.g. 10m, 1h.")] = "10m",
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Generate a one-time join token for `tabard node --join-token` (shown once).

    Example: tabard token generate --ttl 10m
    """
    parse_duration(ttl)
    result = AdminClient(server).post("/api/v1/join-tokens", {"ttl": ttl})
    if json_out:
        print_json(result)
        return
    console.print("Join token (shown once; it works for one node attestation):")
    console.print(f"  {result['token']}", markup=False)
    print_fields({"id": result["id"], "expires": when(result["expires_at"])})


def _print_nodes(rows: list[dict[str, Any]]) -> None:
    print_table(
        ["id", "SPIFFE ID", "attestor", "attested", "SVID expires", "banned"],
        [[r["id"], r["spiffe_id"], r["attestor"], when(r["attested_at"]),
          when(r["svid_expires_at"]), when(r["banned_at"]) if r["banned"] else "no"]
         for r in rows],
    )


@nodes_app.command("list")
def nodes_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """List attested nodes.

    Example: tabard nodes list --json
    """
    rows: list[dict[str, Any]] = AdminClient(server).get("/api/v1/nodes")
    if json_out:
        print_json(rows)
    else:
        _print_nodes(rows)


@nodes_app.command("show")
def nodes_show(node: NodeArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Show one node.

    Example: tabard nodes show 3f2a9c1e
    """
    client = AdminClient(server)
    row = client.get(f"/api/v1/nodes/{_node_id(client, node)}")
    if json_out:
        print_json(row)
        return
    print_fields({"id": row["id"], "SPIFFE ID": row["spiffe_id"], "attestor": row["attestor"],
                  "selectors": ", ".join(row["selectors"]),
                  "attested": when(row["attested_at"]),
                  "SVID expires": when(row["svid_expires_at"]),
                  "banned": when(row["banned_at"]) if row["banned"] else "no"})


@nodes_app.command("ban")
def nodes_ban(node: NodeArg, server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """Ban a node: its SVID stops working at once and it cannot renew or re-attest.

    Example: tabard nodes ban 3f2a9c1e
    """
    client = AdminClient(server)
    row = client.post(f"/api/v1/nodes/{_node_id(client, node)}/ban")
    if json_out:
        print_json(row)
    else:
        console.print(f"banned node {row['id']} ({row['spiffe_id']})")


@instances_app.command("list")
def instances_list(
    agent: Annotated[str | None, typer.Option(
        "--agent", help="Agent name: the path segment after /agent/ in the SPIFFE ID.")] = None,
    node: Annotated[str | None, typer.Option("--node", help="Only this node's (node id).")
                    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List agent instances, newest first, with their evidence.

    Example: tabard instances list --agent trading
    """
    if not 1 <= limit <= 10_000:
        raise Invalid("--limit must be between 1 and 10000")
    client = AdminClient(server)
    params = [f"limit={limit}"]
    if agent is not None:
        params.append(f"agent={_quote(agent)}")
    if node is not None:
        params.append(f"node_id={_node_id(client, node)}")
    rows: list[dict[str, Any]] = client.get("/api/v1/instances?" + "&".join(params))
    if json_out:
        print_json(rows)
        return
    print_table(
        ["id", "agent", "node", "pid", "parent", "last seen", "retired"],
        [[r["id"], r["agent"], r["node_id"][:8], r["pid"], r["parent_instance_id"],
          when(r["last_seen_at"]), when(r["retired_at"])] for r in rows],
    )


_INSTANCE_ID = re.compile(r"[0-9a-hjkmnp-tv-z]{26}")
"""An instance id: a ULID in lower-case Crockford base 32."""


@instances_app.command("show")
def instances_show(
    instance: Annotated[str, typer.Argument(
        help="Instance id (a ULID), or the SPIFFE ID the instance holds.")],
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one agent instance with its evidence, by id or by SPIFFE ID.

    Example: tabard instances show spiffe://example.org/agent/trading/instance/01jd...
    """
    client = AdminClient(server)
    if instance.startswith("spiffe://"):
        spiffe_id = str(SpiffeId.parse(instance))
        rows: list[dict[str, Any]] = client.get(
            f"/api/v1/instances?spiffe_id={_quote(spiffe_id)}")
        if not rows:
            raise InstanceNotFoundError(f"no instance holds {spiffe_id}")
        row = rows[0]
    else:
        instance_id = instance.lower()
        if not _INSTANCE_ID.fullmatch(instance_id):
            raise Invalid(f"{instance!r} is neither an instance id nor a SPIFFE ID")
        row = client.get(f"/api/v1/instances/{instance_id}")
    if json_out:
        print_json(row)
        return
    print_fields({
        "id": row["id"], "SPIFFE ID": row["spiffe_id"], "agent": row["agent"] or "-",
        "node": row["node_id"], "entry": row["entry_id"], "pid": row["pid"],
        "uid/gid": f"{row['uid']}/{row['gid']}", "executable": row["exe_path"],
        "executable SHA-256": row["exe_sha256"], "selectors": ", ".join(row["selectors"]),
        "parent instance": row["parent_instance_id"] or "-",
        "first seen": when(row["first_seen_at"]), "last seen": when(row["last_seen_at"]),
        "retired": when(row["retired_at"]) if row["retired_at"] else "no",
    })


def register(app: typer.Typer) -> None:
    app.add_typer(entry_app, name="entry")
    app.add_typer(token_app, name="token")
    app.add_typer(nodes_app, name="nodes")
    app.add_typer(instances_app, name="instances")
