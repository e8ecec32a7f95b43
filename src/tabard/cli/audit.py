"""``tabard audit``: verify, export, trace, checkpoints and proofs of the audit log."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from tabard.cli.client import AdminClient
from tabard.cli.options import ConfigOpt, DataDirOpt, JsonOpt, ServerOpt
from tabard.cli.output import console, err_console, print_json, print_table, when
from tabard.errors import Invalid

__all__ = ["register"]

audit_app = typer.Typer(help="The tamper-evident audit log: verify, export, trace, checkpoints.",
                        no_args_is_help=True)
checkpoint_app = typer.Typer(help="Signed checkpoints of the audit log.", no_args_is_help=True)
proof_app = typer.Typer(help="RFC 9162 inclusion and consistency proofs.",
                        no_args_is_help=True)

DatabaseOpt = Annotated[str | None, typer.Option(
    "--database-url", help="Verify straight from this database instead of through the server "
    "(implies --local).")]
LocalOpt = Annotated[bool, typer.Option(
    "--local", help="Read the database of --config/--data-dir directly, not the server.")]
BundleOpt = Annotated[Path | None, typer.Option(
    "--bundle", help="Trust bundle (PEM) to verify checkpoint signatures with.")]


def _time(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name} {value!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00Z)"
                      ) from None
    return parsed.isoformat()


def _load_bundle(path: Path, trust_domain: str) -> Any:
    from tabard.spiffe import Bundle, TrustDomain

    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise Invalid(f"--bundle: cannot read {path}: {exc.strerror}") from None
    return Bundle.from_pem(TrustDomain(trust_domain), pem)


@audit_app.command("verify")
def verify(
    from_checkpoint: Annotated[bool, typer.Option(
        "--from-checkpoint", help="Check only what follows the latest signed checkpoint.")
    ] = False,
    local: LocalOpt = False,
    database_url: DatabaseOpt = None,
    bundle: BundleOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check every record's hash and chain link and every signed checkpoint; name the first
    bad record. Exits 1 if the log was tampered with.

    Example: tabard audit verify --database-url sqlite:///.tabard/tabard.db
    """
    if local or database_url:
        from tabard.app import open_audit
        from tabard.config import load_settings

        settings = load_settings(config)
        if data_dir is not None:
            settings = settings.with_overrides(data_dir=data_dir)
        audit = open_audit(settings, database_url)
        bundles = _load_bundle(bundle, settings.trust_domain) if bundle else None
        report = audit.verify(from_checkpoint=from_checkpoint, bundles=bundles).to_json()
    else:
        query = "?from_checkpoint=true" if from_checkpoint else ""
        report = AdminClient(server).get(f"/api/v1/audit/verify{query}")
    if json_out:
        print_json(report)
    else:
        for note in report.get("notes", []):
            err_console.print(f"note: {note}", markup=False)
        if report["ok"]:
            console.print(f"ok: {report['records']} records (#{report['first_seq']}.."
                          f"#{report['last_seq']}) and {report['checkpoints']} checkpoints "
                          f"verify")
        else:
            p = report["problem"]
            err_console.print(f"TAMPERED: record {p['seq']}: {p['message']} ({p['code']})",
                              markup=False)
    if not report["ok"]:
        raise typer.Exit(1)


@audit_app.command("export")
def export(
    since: Annotated[str | None, typer.Option("--since", help="From this time (ISO 8601).")
                     ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this time.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Output format: jsonl.")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")
                      ] = None,
    server: ServerOpt = None,
) -> None:
    """Export records as JSON Lines: seq, prev, hash and the record (enough to check each
    hash and link offline).

    Example: tabard audit export --since 2026-01-01T00:00Z --format jsonl > audit.jsonl
    """
    if fmt != "jsonl":
        raise Invalid("--format: only jsonl is supported")
    params = {k: v for k, v in (("since", _time(since, "--since")),
                                ("until", _time(until, "--until"))) if v}
    path = "/api/v1/audit/export" + (f"?{urlencode(params)}" if params else "")
    text = AdminClient(server).get(path)
    data = text if isinstance(text, str) else ""
    if output is not None:
        output.write_text(data)
        console.print(f"wrote {data.count(chr(10))} records to {output}")
    else:
        sys.stdout.write(data)


def _record_row(r: dict[str, Any]) -> list[Any]:
    rec = r["record"]
    who = rec.get("who", {})
    what = rec.get("what", {})
    chain = " > ".join(who.get("chain", []))
    decision = rec.get("decision") or {}
    return [r["seq"], when(rec["time"]), rec["kind"], rec["actor"],
            who.get("agent") or "-", who.get("instance") or "-", who.get("user") or "-",
            chain or "-", what.get("operation"), what.get("target") or "-",
            decision.get("effect", "-"), rec["outcome"]]


@audit_app.command("trace")
def trace(
    agent: Annotated[str | None, typer.Option("--agent", help="Agent name.")] = None,
    instance: Annotated[str | None, typer.Option("--instance", help="Instance id.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="User name.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many records.")] = 1000,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Everything done by or for an agent, an instance or a user, across delegation chains
    (records whose chain mentions them, sub-agents included).

    Example: tabard audit trace --agent refund-bot
    """
    if sum(v is not None for v in (agent, instance, user)) != 1:
        raise Invalid("give exactly one of --agent, --instance, --user")
    params = {k: v for k, v in (("agent", agent), ("instance", instance), ("user", user)) if v}
    params["limit"] = str(limit)
    rows = AdminClient(server).get(f"/api/v1/audit/trace?{urlencode(params)}")
    if json_out:
        print_json(rows)
        return
    print_table(["seq", "time", "kind", "actor", "agent", "instance", "user", "chain",
                 "operation", "target", "decision", "outcome"],
                [_record_row(r) for r in rows])


@checkpoint_app.command("create")
def checkpoint_create(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the checkpoint "
                                                "(JSON with its JWS) to this file.")] = None,
    server: ServerOpt = None, json_out: JsonOpt = False,
) -> None:
    """Sign the current tree head now (the server also does it periodically).

    Example: tabard audit checkpoint create -o checkpoint.json
    """
    cp = AdminClient(server).post("/api/v1/audit/checkpoints")
    if output is not None:
        output.write_text(json.dumps(cp, indent=2) + "\n")
    if json_out:
        print_json(cp)
        return
    console.print(f"checkpoint of {cp['tree_size']} records, root {cp['root_hash']}, "
                  f"signed {when(cp['time'])}" + (f" -> {output}" if output else ""))


@checkpoint_app.command("list")
def checkpoint_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """List signed checkpoints.

    Example: tabard audit checkpoint list
    """
    rows = AdminClient(server).get("/api/v1/audit/checkpoints")
    if json_out:
        print_json(rows)
        return
    print_table(["records", "root hash", "signed"],
                [[r["tree_size"], r["root_hash"], when(r["created_at"])] for r in rows])


@checkpoint_app.command("get")
def checkpoint_get(
    tree_size: Annotated[int | None, typer.Argument(help="Tree size (default: latest).")
                         ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")
                      ] = None,
    server: ServerOpt = None,
) -> None:
    """Fetch a checkpoint with its JWS, for offline verification.

    Example: tabard audit checkpoint get -o checkpoint.json
    """
    suffix = "latest" if tree_size is None else str(tree_size)
    cp = AdminClient(server).get(f"/api/v1/audit/checkpoints/{suffix}")
    text = json.dumps(cp, indent=2, default=str) + "\n"
    if output is not None:
        output.write_text(text)
    else:
        sys.stdout.write(text)


@audit_app.command("verify-checkpoint")
def verify_checkpoint_cmd(
    file: Annotated[Path, typer.Argument(help="Checkpoint file (JSON with a jws field, or "
                                         "the bare JWS).")],
    bundle: Annotated[Path, typer.Option("--bundle", help="Trust bundle, PEM.")],
    json_out: JsonOpt = False,
) -> None:
    """Verify a checkpoint offline, with the trust bundle alone. Exits 1 if it does not
    verify.

    Example: tabard audit verify-checkpoint checkpoint.json --bundle bundle.pem
    """
    from tabard.audit import CheckpointError, verify_checkpoint
    from tabard.spiffe import Bundle, BundleSet, TrustDomain

    try:
        raw = file.read_text().strip()
    except OSError as exc:
        raise Invalid(f"cannot read {file}: {exc.strerror}") from None
    document = raw
    if raw.startswith("{"):
        try:
            document = str(json.loads(raw)["jws"])
        except (ValueError, KeyError):
            raise Invalid(f"{file}: a JSON checkpoint needs a jws field") from None
    pem = bundle.read_bytes()
    try:
        import jwt

        td = json.loads(jwt.api_jws.decode(document, options={"verify_signature": False})
                        )["trust_domain"]
        source = BundleSet([Bundle.from_pem(TrustDomain(td), pem)])
        cp = verify_checkpoint(document, source)
    except (CheckpointError, ValueError, KeyError, jwt.PyJWTError) as exc:
        message = exc.message if isinstance(exc, CheckpointError) else "not a checkpoint"
        if json_out:
            print_json({"ok": False, "error": message})
        else:
            err_console.print(f"INVALID: {message}", markup=False)
        raise typer.Exit(1) from None
    if json_out:
        print_json({"ok": True, **cp.body()})
        return
    console.print(f"ok: checkpoint of {cp.tree_size} records in {cp.trust_domain}, root "
                  f"{cp.root_hash.hex()}, signed {cp.time.isoformat()} by the audit key")


@proof_app.command("inclusion")
def proof_inclusion(
    seq: Annotated[int, typer.Argument(help="Record number.")],
    tree_size: Annotated[int | None, typer.Option("--tree-size", help="Default: the latest "
                                                  "checkpoint's.")] = None,
    server: ServerOpt = None, json_out: JsonOpt = False,
) -> None:
    """The RFC 9162 inclusion proof of a record, checked here against the root it names.

    Example: tabard audit proof inclusion 42
    """
    from tabard.audit import verify_inclusion

    q = {"seq": str(seq)} | ({"tree_size": str(tree_size)} if tree_size else {})
    p = AdminClient(server).get(f"/api/v1/audit/proofs/inclusion?{urlencode(q)}")
    ok = verify_inclusion(bytes.fromhex(p["leaf_hash"]), p["leaf_index"], p["tree_size"],
                          [bytes.fromhex(h) for h in p["path"]], bytes.fromhex(p["root_hash"]))
    if json_out:
        print_json(p | {"verified": ok})
    else:
        console.print(f"record {seq} in the tree of {p['tree_size']} (root {p['root_hash']}): "
                      f"{len(p['path'])} hashes, {'verified' if ok else 'DOES NOT VERIFY'}")
    if not ok:
        raise typer.Exit(1)


@proof_app.command("consistency")
def proof_consistency(
    first: Annotated[int, typer.Argument(help="Smaller tree size.")],
    second: Annotated[int | None, typer.Argument(help="Larger tree size (default: the latest "
                                                 "checkpoint's).")] = None,
    server: ServerOpt = None, json_out: JsonOpt = False,
) -> None:
    """The RFC 9162 consistency proof between two tree sizes, checked here.

    Example: tabard audit proof consistency 100 200
    """
    from tabard.audit import verify_consistency

    q = {"first": str(first)} | ({"second": str(second)} if second else {})
    p = AdminClient(server).get(f"/api/v1/audit/proofs/consistency?{urlencode(q)}")
    ok = verify_consistency(p["first"], p["second"], bytes.fromhex(p["first_root"]),
                            bytes.fromhex(p["second_root"]), [bytes.fromhex(h) for h in p["path"]])
    if json_out:
        print_json(p | {"verified": ok})
    else:
        console.print(f"tree {p['first']} -> {p['second']}: {len(p['path'])} hashes, "
                      f"{'consistent' if ok else 'NOT CONSISTENT'}")
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    audit_app.add_typer(checkpoint_app, name="checkpoint")
    audit_app.add_typer(proof_app, name="proof")
    app.add_typer(audit_app, name="audit")
