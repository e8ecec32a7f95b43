"""Authority commands: the bundle, admin minting of SVIDs, and CA/JWT key rotation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tabard.cli.client import AdminClient
from tabard.cli.options import JsonOpt, ServerOpt
from tabard.cli.output import console, print_fields, print_json, print_table, when
from tabard.config import parse_duration
from tabard.errors import Invalid
from tabard.spiffe import Bundle, SpiffeId, TrustDomain

bundle_app = typer.Typer(help="The trust domain's SPIFFE bundle.", no_args_is_help=True)
x509_app = typer.Typer(help="X509-SVIDs minted by an admin (break-glass, testing).",
                       no_args_is_help=True)
jwt_app = typer.Typer(help="JWT-SVIDs minted by an admin (break-glass, testing).",
                      no_args_is_help=True)
authority_app = typer.Typer(help="CA and JWT signing keys: list, rotate, retire.",
                            no_args_is_help=True)

SpiffeIdOpt = Annotated[str, typer.Option("--spiffe-id", help="SPIFFE ID of the SVID.")]


def _validate_id(value: str) -> str:
    return str(SpiffeId.parse(value))


def _ttl(value: str | None) -> str | None:
    if value is None:
        return None
    parse_duration(value)
    return value


@bundle_app.command("show")
def bundle_show(
    format: Annotated[str, typer.Option("--format", "-f", help="pem or jwks.")] = "jwks",
    server: ServerOpt = None,
) -> None:
    """Print the bundle: JWKS (SPIFFE bundle format) or the X.509 authorities as PEM.

    Example: tabard bundle show --format pem > bundle.pem
    """
    if format not in ("pem", "jwks"):
        raise Invalid(f"--format must be pem or jwks, not {format!r}")
    client = AdminClient(server)
    document = client.get("/bundle", auth=False)
    if format == "jwks":
        print_json(document)
        return
    ready = client.get("/readyz", auth=False)
    bundle = Bundle.parse(TrustDomain(ready["trust_domain"]), json.dumps(document))
    typer.echo(bundle.x509_pem(), nl=False)


@x509_app.command("mint")
def x509_mint(
    spiffe_id: SpiffeIdOpt,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where to write svid.pem, "
                                          "svid.key (0600) and bundle.pem.")],
    ttl: Annotated[str | None, typer.Option(help="Lifetime, e.g. 1h (server default 1h).")] = None,
    dns: Annotated[list[str] | None, typer.Option("--dns", help="DNS SAN (repeatable).")] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Mint an X509-SVID. The key is made here and never leaves this machine.

    Example: tabard x509 mint --spiffe-id spiffe://example.org/web --ttl 1h --out-dir ./svid
    """
    spiffe = _validate_id(spiffe_id)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tabard-csr")]))
        .sign(key, hashes.SHA256())
    )
    body = {
        "spiffe_id": spiffe,
        "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
        "ttl": _ttl(ttl),
        "dns_names": dns or [],
    }
    result: dict[str, Any] = AdminClient(server).post("/api/v1/svids/x509", body)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "svid.pem").write_text(result["svid_pem"])
    (out_dir / "bundle.pem").write_text(result["bundle_pem"])
    key_path = out_dir / "svid.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    files = {name: str(out_dir / name) for name in ("svid.pem", "svid.key", "bundle.pem")}
    if json_out:
        print_json({"spiffe_id": result["spiffe_id"], "expires_at": result["expires_at"],
                    "serial": result["serial"], "files": files})
        return
    print_fields({"SPIFFE ID": result["spiffe_id"], "expires": when(result["expires_at"]),
                  "serial": result["serial"], **files})


@jwt_app.command("mint")
def jwt_mint(
    spiffe_id: SpiffeIdOpt,
    audience: Annotated[list[str], typer.Option("--audience", "-a",
                                                help="Audience (repeatable; at least one).")],
    ttl: Annotated[str | None, typer.Option(help="Lifetime, e.g. 5m (server default 5m).")] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Mint a JWT-SVID and print it (only the token, for use in scripts).

    Example: tabard jwt mint --spiffe-id spiffe://example.org/web --audience billing --ttl 5m
    """
    body = {"spiffe_id": _validate_id(spiffe_id), "audience": audience, "ttl": _ttl(ttl)}
    result = AdminClient(server).post("/api/v1/svids/jwt", body)
    if json_out:
        print_json(result)
    else:
        typer.echo(result["token"])


def _print_authorities(rows: list[dict[str, Any]], json_out: bool) -> None:
    if json_out:
        print_json(rows)
        return
    print_table(
        ["id", "kind", "state", "key id", "type", "activated", "not after"],
        [[r["id"][:8], r["kind"], r["state"], r["key_id"], r["key_type"],
          when(r["activated_at"]), when(r["not_after"])] for r in rows],
    )


@authority_app.command("list")
def authority_list(server: ServerOpt = None, json_out: JsonOpt = False) -> None:
    """List CA and JWT keys with their state (prepared, active, old, retired).

    Example: tabard authority list --json
    """
    _print_authorities(AdminClient(server).get("/api/v1/authorities"), json_out)


@authority_app.command("rotate")
def authority_rotate(
    kind: Annotated[str | None, typer.Option(help="x509 or jwt (default both).")] = None,
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Activate the next key now; the previous one stays in the bundle until retired.

    Example: tabard authority rotate --kind x509
    """
    if kind not in (None, "x509", "jwt"):
        raise Invalid(f"--kind must be x509 or jwt, not {kind!r}")
    rows = AdminClient(server).post("/api/v1/authorities/rotate", {"kind": kind})
    if not json_out:
        console.print("rotated")
    _print_authorities(rows, json_out)


@authority_app.command("retire")
def authority_retire(
    key: Annotated[str, typer.Argument(help="Authority id (or a unique prefix of it).")],
    server: ServerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Retire an old or prepared key: it leaves the bundle and its SVIDs stop validating.

    Example: tabard authority retire 3f2a9c1e
    """
    client = AdminClient(server)
    rows = client.get("/api/v1/authorities")
    matches = [r for r in rows if r["id"].startswith(key)]
    if len(matches) != 1:
        raise Invalid(f"{key!r} matches {len(matches)} authorities; give more of the id")
    _print_authorities(client.post(f"/api/v1/authorities/{matches[0]['id']}/retire"), json_out)


def register(app: typer.Typer) -> None:
    app.add_typer(bundle_app, name="bundle")
    app.add_typer(x509_app, name="x509")
    app.add_typer(jwt_app, name="jwt")
    app.add_typer(authority_app, name="authority")
