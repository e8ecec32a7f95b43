"""Registry commands as an admin uses them against ``tabard dev``, and a node over real mTLS."""

from __future__ import annotations

import hashlib
import json
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tabard.spiffe import Bundle, TrustDomain
from tests.support.platform import DevPlatform, run_cli

TD = "example.org"
NODE = f"spiffe://{TD}/node/{'ab' * 16}"
COMMANDS = [
    ["entry", "create"], ["entry", "list"], ["entry", "show"], ["entry", "update"],
    ["entry", "delete"], ["token", "generate"], ["nodes", "list"], ["nodes", "show"],
    ["nodes", "ban"], ["instances", "list"], ["instances", "show"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_registry_command_has_help_with_an_example(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


def ok(result: Any) -> Any:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout) if result.stdout.lstrip().startswith(("{", "[")) else None


def test_entry_create_list_show_update_delete(platform: DevPlatform) -> None:
    created = ok(platform.cli(
        "entry", "create", "--spiffe-id", f"spiffe://{TD}/agent/trading/instance/{{instance}}",
        "--parent-id", NODE, "--selector", "unix:uid:1000",
        "--selector", "unix:path:/usr/bin/python3", "--x509-ttl", "30m", "--jwt-ttl", "2m",
        "--dns", "trading.example.org", "--federates-with", "partner.example",
        "--hint", "trading desk", "--json"))
    assert created["selectors"] == ["unix:path:/usr/bin/python3", "unix:uid:1000"]
    assert (created["x509_svid_ttl"], created["jwt_svid_ttl"]) == (1800, 120)
    assert created["dns_names"] == ["trading.example.org"]
    assert created["federates_with"] == ["partner.example"] and created["parent_id"] == NODE
    entry_id = created["id"]

    # a plain entry on the same node, given by its node id instead of its SPIFFE ID
    web = ok(platform.cli("entry", "create", "--spiffe-id", f"spiffe://{TD}/web",
                          "--parent-id", "ab" * 16, "-s", "unix:user:www-data", "--json"))
    assert web["parent_id"] == NODE and web["x509_svid_ttl"] == 3600

    listed = ok(platform.cli("entry", "list", "--parent-id", NODE, "--json"))
    assert [e["id"] for e in listed] == [entry_id, web["id"]]
    only_web = ok(platform.cli("entry", "list", "--spiffe-id", f"spiffe://{TD}/web", "--json"))
    assert [e["id"] for e in only_web] == [web["id"]]
    table = platform.cli("entry", "list")
    assert table.returncode == 0 and entry_id[:8] in table.stdout and "30m" in table.stdout

    shown = ok(platform.cli("entry", "show", entry_id[:8], "--json"))
    assert shown == created
    human = platform.cli("entry", "show", entry_id)
    assert human.returncode == 0 and "trading desk" in human.stdout

    updated = ok(platform.cli("entry", "update", entry_id[:13], "--x509-ttl", "1h",
                              "--selector", "unix:uid:1001", "--json"))
    assert updated["x509_svid_ttl"] == 3600 and updated["selectors"] == ["unix:uid:1001"]
    assert updated["hint"] == "trading desk" and updated["revision"] > created["revision"]

    deleted = platform.cli("entry", "delete", entry_id)
    assert deleted.returncode == 0 and entry_id in deleted.stdout
    gone = platform.cli("entry", "show", entry_id)
    assert gone.returncode == 1 and "no entry" in gone.stderr
    duplicate = platform.cli("entry", "create", "--spiffe-id", f"spiffe://{TD}/web",
                             "--parent-id", NODE, "-s", "unix:user:www-data")
    assert duplicate.returncode == 1 and "exists already" in duplicate.stderr
    ok(platform.cli("entry", "delete", web["id"]))


def test_invalid_selectors_ids_and_ttls_exit_2_with_one_line(platform: DevPlatform) -> None:
    template = f"spiffe://{TD}/agent/a/instance/{{instance}}"
    base = ["entry", "create", "--parent-id", NODE]
    cases = [
        [*base, "--spiffe-id", template, "-s", "unix:uid:abc"],
        [*base, "--spiffe-id", template, "-s", "nocolon"],
        [*base, "--spiffe-id", template, "-s", "unix:sha256:ABCDEF"],
        [*base, "--spiffe-id", template, "-s", "unix:path:relative/bin"],
        [*base, "--spiffe-id", template, "-s", "unix:shoe:size"],
        [*base, "--spiffe-id", template, "-s", "Docker:label:x"],
        [*base, "--spiffe-id", "spiffe://Example.org/x", "-s", "unix:uid:1"],
        [*base, "--spiffe-id", f"spiffe://{TD}/a/{{instance}}/{{instance}}", "-s", "unix:uid:1"],
        [*base, "--spiffe-id", f"spiffe://{TD}/a/x{{instance}}", "-s", "unix:uid:1"],
        [*base, "--spiffe-id", "spiffe://other.org/web", "-s", "unix:uid:1"],  # server-side
        [*base, "--spiffe-id", f"spiffe://{TD}", "-s", "unix:uid:1"],
        [*base, "--spiffe-id", f"spiffe://{TD}/node/{'cd' * 16}", "-s", "unix:uid:1"],
        [*base, "--spiffe-id", f"spiffe://{TD}/web", "-s", "unix:uid:1", "--x509-ttl", "soon"],
        [*base, "--spiffe-id", f"spiffe://{TD}/web", "-s", "unix:uid:1", "--x509-ttl", "30d"],
        [*base, "--spiffe-id", f"spiffe://{TD}/web", "-s", "unix:uid:1", "--dns", "bad_name!"],
        ["entry", "create", "--parent-id", "not-a-node", "--spiffe-id", f"spiffe://{TD}/web",
         "-s", "unix:uid:1"],
        ["entry", "create", "--parent-id", "spiffe://other.org/node/x",
         "--spiffe-id", f"spiffe://{TD}/web", "-s", "unix:uid:1"],
        ["entry", "create", "--parent-id", NODE, "--spiffe-id", f"spiffe://{TD}/web"],
        ["entry", "show", "not an id"],
        ["entry", "update", "0" * 8],
        ["token", "generate", "--ttl", "forever"],
        ["token", "generate", "--ttl", "90d"],
        ["instances", "list", "--limit", "0"],
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:  # each CLI start costs about 2 s
        results = list(pool.map(lambda args: platform.cli(*args), cases))
    for args, result in zip(cases, results, strict=True):
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
    assert ok(platform.cli("entry", "list", "--json")) == []


def _csr(key: ec.EllipticCurvePrivateKey) -> str:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _tls(bundle_pem: str, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=bundle_pem)
    context.check_hostname = False  # the node checks the server's SPIFFE ID, not a host name
    if cert is not None and key is not None:
        context.load_cert_chain(cert, key)
    return context


def test_join_token_attestation_instances_and_ban_over_mtls(platform: DevPlatform,
                                                             tmp_path: Path) -> None:
    node_api = platform.ready["node_api_url"]
    bundle = Bundle.parse(TrustDomain(TD), httpx.get(f"{platform.url}/bundle").text)
    bundle_pem = bundle.x509_pem()
    token = ok(platform.cli("token", "generate", "--ttl", "5m", "--json"))
    assert token["token"].startswith("tabard_join_")
    human = platform.cli("token", "generate")
    assert human.returncode == 0 and "tabard_join_" in human.stdout

    key = ec.generate_private_key(ec.SECP256R1())
    attest = {"attestor": "join_token", "join_token": token["token"], "csr": _csr(key)}
    with httpx.Client(verify=_tls(bundle_pem), timeout=30) as anonymous:
        attested = anonymous.post(f"{node_api}/node/v1/attest", json=attest)
        assert attested.status_code == 200, attested.text
        again = anonymous.post(f"{node_api}/node/v1/attest", json={**attest, "csr": _csr(key)})
        assert again.status_code == 401 and again.json()["code"] == "invalid_join_token"
        assert anonymous.post(f"{node_api}/node/v1/sync", json={}).status_code == 401
    node = attested.json()
    cert, key_file = tmp_path / "node.pem", tmp_path / "node.key"
    cert.write_text(node["svid_pem"])
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    nodes = ok(platform.cli("nodes", "list", "--json"))
    mine = next(n for n in nodes if n["id"] == node["node_id"])
    assert mine["selectors"] == [f"join_token:{token['id']}"] and not mine["banned"]
    shown = ok(platform.cli("nodes", "show", node["node_id"], "--json"))
    assert shown["spiffe_id"] == node["spiffe_id"]

    entry = ok(platform.cli(
        "entry", "create", "--spiffe-id", f"spiffe://{TD}/agent/clerk/instance/{{instance}}",
        "--parent-id", node["node_id"][:12], "--selector", "unix:uid:1000", "--json"))
    assert entry["parent_id"] == node["spiffe_id"]
    exe_sha = hashlib.sha256(b"clerk").hexdigest()
    process = {"entry_id": entry["id"], "pid": 321, "start_time": 77.5, "uid": 1000,
               "gid": 1000, "exe_path": "/usr/bin/clerk", "exe_sha256": exe_sha,
               "selectors": ["unix:uid:1000", "unix:gid:1000"], "parent_instance_id": None}
    with httpx.Client(verify=_tls(bundle_pem, cert, key_file), timeout=30) as mtls:
        synced = mtls.post(f"{node_api}/node/v1/sync", json={})
        assert synced.status_code == 200, synced.text
        assert [e["id"] for e in synced.json()["entries"]] == [entry["id"]]
        first = mtls.post(f"{node_api}/node/v1/instances", json=process).json()
        same = mtls.post(f"{node_api}/node/v1/instances", json=process).json()
        assert first["created"] and same == {**first, "created": False}

        instances = ok(platform.cli("instances", "list", "--agent", "clerk", "--json"))
        assert [i["id"] for i in instances] == [first["instance_id"]]
        assert instances[0]["spiffe_id"] == first["spiffe_id"]
        assert ok(platform.cli("instances", "list", "--agent", "nobody", "--json")) == []
        table = platform.cli("instances", "list", env={"COLUMNS": "200"})
        assert table.returncode == 0 and first["instance_id"] in table.stdout

        # one instance by the SPIFFE ID it holds, or by its id
        by_spiffe_id = ok(platform.cli("instances", "show", first["spiffe_id"], "--json"))
        assert by_spiffe_id == instances[0]
        assert ok(platform.cli("instances", "show", first["instance_id"].upper(),
                               "--json")) == instances[0]
        shown_instance = platform.cli("instances", "show", first["spiffe_id"],
                                      env={"COLUMNS": "200"})
        assert shown_instance.returncode == 0, shown_instance.stderr
        assert first["instance_id"] in shown_instance.stdout and exe_sha in shown_instance.stdout
        unknown = first["spiffe_id"].replace(first["instance_id"], "0" * 26)
        missing = platform.cli("instances", "show", unknown)
        assert missing.returncode == 1 and "no instance holds" in missing.stderr
        assert platform.cli("instances", "show", "0" * 26).returncode == 1
        malformed = platform.cli("instances", "show", "not-an-id")
        assert malformed.returncode == 2 and "neither" in malformed.stderr
        with platform.http() as admin:
            listed = admin.get("/api/v1/instances",
                               params={"spiffe_id": first["spiffe_id"]}).json()
            assert [i["id"] for i in listed] == [first["instance_id"]]
            other_agent = admin.get("/api/v1/instances", params={
                "spiffe_id": first["spiffe_id"], "agent": "nobody"})
            assert other_agent.status_code == 200 and other_agent.json() == []
            bad = admin.get("/api/v1/instances", params={"spiffe_id": "not a spiffe id"})
            assert bad.status_code == 400

        banned = platform.cli("nodes", "ban", node["node_id"][:10])
        assert banned.returncode == 0 and "banned" in banned.stdout
        refused = mtls.post(f"{node_api}/node/v1/sync", json={})
        assert refused.status_code == 401 and refused.json()["code"] == "node_unauthenticated"
