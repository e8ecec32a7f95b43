"""Issue 3's acceptance, end to end: agents get identities from ``tabard node`` through py-spiffe.

Everything goes through what a user has: the ``tabard`` CLI, the REST bundle endpoint, the
SPIFFE Workload API (py-spiffe in this process and in separate workload processes, raw gRPC
for the header check), ``openssl`` and real processes. One ``tabard dev`` is shared by the
module; each test registers its own agents, and each agent is its own executable (a copied
Python, see ``AgentPython``), so one test's entries never match another test's processes. The
server-outage test runs ``tabard server`` and ``tabard node`` as separate processes.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from spiffe import WorkloadApiClient, X509Source
from spiffe._proto import workload_pb2 as pb
from spiffe._proto import workload_pb2_grpc as pb_grpc

from tests.support.platform import DevPlatform
from tests.support.processes import (
    AgentPython,
    NodeProcess,
    ServerProcess,
    WorkloadResult,
    run_workload,
    start_workload,
    wait_until,
)

TD = "example.org"
SYNC_WAIT = 15.0  # the node syncs entries every 5 s
HEADER = (("workload.spiffe.io", "true"),)
RUNNER_EXE = os.path.realpath(sys.executable)


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    """A directory every uid can traverse: the socket and agent executables live here."""
    path = Path(tempfile.mkdtemp(prefix="tabard-e2e-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def dev(world: Path) -> Iterator[DevPlatform]:
    with DevPlatform(world / "dev", trust_domain=TD) as running:
        yield running


@pytest.fixture(scope="module")
def runner_id(dev: DevPlatform) -> str:
    """An identity for this test process itself (py-spiffe in process), X509 TTL 20 s."""
    spiffe_id = f"spiffe://{TD}/test-runner"
    create_entry(dev, spiffe_id, ["unix:uid:0", f"unix:path:{RUNNER_EXE}"], "--x509-ttl", "20s")
    return spiffe_id


def create_entry(cli: DevPlatform | ServerProcess, spiffe_id: str, selectors: list[str],
                 *extra: str, parent: str | None = None) -> dict[str, Any]:
    parent_id = parent or (cli.node_spiffe_id if isinstance(cli, DevPlatform) else "")
    args = ["entry", "create", "--spiffe-id", spiffe_id, "--parent-id", parent_id, "--json"]
    for selector in selectors:
        args += ["--selector", selector]
    done = cli.cli(*args, *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    entry: dict[str, Any] = json.loads(done.stdout)
    return entry


def cli_json(cli: DevPlatform | ServerProcess, *args: str) -> Any:
    done = cli.cli(*args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def fetch_until(python: AgentPython, socket_uri: str, *args: str,
                accept: Callable[[dict[str, Any]], bool] | None = None,
                timeout: float = SYNC_WAIT) -> dict[str, Any]:
    """Run the agent until the Workload API answers it (entries reach the node by sync)."""
    last: list[WorkloadResult] = []

    def attempt() -> dict[str, Any] | None:
        result = run_workload(python, "agent.py", *args, socket_uri=socket_uri)
        last[:] = [result]
        if result.ok and (accept is None or accept(result.output)):
            return result.output
        assert result.returncode in (0, 3), result.stderr  # a refusal, not a crash
        return None

    try:
        return wait_until(attempt, timeout=timeout, interval=0.5,
                          message=f"an SVID for {python.path.name}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last answer: {last[0].stdout} {last[0].stderr}") from exc


def instance_of(spiffe_id: str) -> str:
    instance = spiffe_id.rsplit("/instance/", 1)[1]
    assert len(instance) == 26 and instance.isalnum() and instance == instance.lower()
    return instance


def bundle_authorities(base_url: str) -> list[x509.Certificate]:
    """The X.509 authorities of the SPIFFE bundle served at ``/bundle`` (JWKS ``x5c``)."""
    document = httpx.get(f"{base_url}/bundle", timeout=10).json()
    return [x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
            for key in document["keys"] if key.get("use") == "x509-svid"]


def pem(certs: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)


def openssl_verify(directory: Path, chain: list[x509.Certificate],
                   authorities: list[x509.Certificate]) -> subprocess.CompletedProcess[str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.pem").write_text(pem(authorities))
    (directory / "leaf.pem").write_text(pem(chain[:1]))
    untrusted = []
    if len(chain) > 1:
        (directory / "intermediates.pem").write_text(pem(chain[1:]))
        untrusted = ["-untrusted", str(directory / "intermediates.pem")]
    return subprocess.run(["openssl", "verify", "-CAfile", str(directory / "ca.pem"),
                           *untrusted, str(directory / "leaf.pem")],
                          capture_output=True, text=True, timeout=30, check=False)


def unrelated_ca() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unrelated CA")])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def issued_by(leaf: x509.Certificate, authorities: list[x509.Certificate]
              ) -> x509.Certificate | None:
    for ca in authorities:
        try:
            leaf.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return ca
    return None


def svid_of(source: X509Source) -> Any:
    return source.get_x509_context().default_svid


def wait_for_context(socket_uri: str, spiffe_id: str) -> Any:
    def attempt() -> Any:
        try:
            with WorkloadApiClient(socket_path=socket_uri) as client:
                context = client.fetch_x509_context(timeout=10)
        except Exception:  # PERMISSION_DENIED until the entry reaches the node
            return None
        return context if str(context.default_svid.spiffe_id) == spiffe_id else None

    return wait_until(attempt, timeout=SYNC_WAIT, interval=0.3,
                      message=f"an X509 context for {spiffe_id}")


class Lines:
    """The JSON lines a long-running workload prints, read on a thread (bounded waits)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def next(self, timeout: float = 30.0) -> dict[str, Any]:
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty as exc:
            raise AssertionError(f"no line from the workload in {timeout:g}s") from exc
        if line is None:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"the workload exited: {stderr[-2000:]}")
        value: dict[str, Any] = json.loads(line)
        return value


# --- 1. py-spiffe against the node ----------------------------------------------------------


def test_py_spiffe_fetches_x509_context_bundles_and_a_jwt_svid_it_can_validate(
    dev: DevPlatform, runner_id: str, world: Path
) -> None:
    context = wait_for_context(dev.workload_socket, runner_id)
    svid = context.default_svid
    assert svid.leaf.public_key() == svid.private_key.public_key()
    served = bundle_authorities(dev.url)
    bundle = context.x509_bundle_set.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
    assert bundle is not None and set(bundle.x509_authorities) == set(served)
    assert issued_by(svid.leaf, served) is not None

    verified = openssl_verify(world / "verify-1", svid.cert_chain, served)
    assert verified.returncode == 0 and ": OK" in verified.stdout, verified.stdout + verified.stderr
    refused = openssl_verify(world / "verify-1-unrelated", svid.cert_chain, [unrelated_ca()])
    assert refused.returncode != 0

    with WorkloadApiClient(socket_path=dev.workload_socket) as client:
        bundles = client.fetch_x509_bundles(timeout=20)
        assert [str(b.trust_domain) for b in bundles.bundles] == [TD]
        x509_bundle = bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        assert x509_bundle is not None and set(x509_bundle.x509_authorities) == set(served)

        jwt_bundles = client.fetch_jwt_bundles(timeout=20)
        served_jwks = httpx.get(f"{dev.url}/bundle", timeout=10).json()["keys"]
        kids = [k["kid"] for k in served_jwks if k.get("use") == "jwt-svid"]
        jwt_bundle = jwt_bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        assert jwt_bundle is not None and kids
        assert all(jwt_bundle.get_jwt_authority(kid) is not None for kid in kids)

        token = client.fetch_jwt_svid(audience={"payments"}, timeout=20)
        assert str(token.spiffe_id) == runner_id and token.audience == {"payments"}
        validated = client.validate_jwt_svid(token.token, "payments", timeout=20)
        assert str(validated.spiffe_id) == runner_id
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            client.validate_jwt_svid(token.token, "someone-else", timeout=20)
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            client.validate_jwt_svid(token.token[:-4] + "AAAA", "payments", timeout=20)

    # and the token verifies with the bundle's JWT authority outside the Workload API too
    kid = jwt.get_unverified_header(token.token)["kid"]
    key = jwt.PyJWK({k: v for k, v in next(j for j in served_jwks if j.get("kid") == kid).items()
                     if k != "use"})
    claims = jwt.decode(token.token, key.key, algorithms=["ES256", "ES384", "RS256", "PS256"],
                        audience="payments")
    assert claims["sub"] == runner_id


# --- 2. rotation seen by a live X509Source --------------------------------------------------


def test_x509_source_sees_the_svid_rotate_without_restarting(
    dev: DevPlatform, runner_id: str
) -> None:
    wait_for_context(dev.workload_socket, runner_id)
    updated = threading.Event()
    with X509Source(socket_path=dev.workload_socket, timeout_in_seconds=20) as source:
        first = svid_of(source).leaf
        assert str(svid_of(source).spiffe_id) == runner_id
        source.subscribe_for_updates(updated.set)
        # TTL 20 s, rotated at half-life: a new SVID within ~10 s of the first one's issue
        wait_until(lambda: svid_of(source).leaf.serial_number != first.serial_number,
                   timeout=30, interval=0.2, message="a rotated SVID in the X509Source")
        second = svid_of(source).leaf
        assert updated.is_set()
        assert str(svid_of(source).spiffe_id) == runner_id
        assert second.not_valid_after_utc > first.not_valid_after_utc
        assert second.public_key() == svid_of(source).private_key.public_key()
        assert issued_by(second, bundle_authorities(dev.url)) is not None


def test_after_authority_rotate_new_svids_chain_to_the_new_ca(
    dev: DevPlatform, runner_id: str, world: Path
) -> None:
    wait_for_context(dev.workload_socket, runner_id)
    active = [a["id"] for a in cli_json(dev, "authority", "list")
              if a["kind"] == "x509" and a["state"] == "active"]
    with X509Source(socket_path=dev.workload_socket, timeout_in_seconds=20) as source:
        old_ca = issued_by(svid_of(source).leaf, bundle_authorities(dev.url))
        assert old_ca is not None

        rotated = dev.cli("authority", "rotate", "--kind", "x509")
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        now_active = [a["id"] for a in cli_json(dev, "authority", "list")
                      if a["kind"] == "x509" and a["state"] == "active"]
        assert now_active and now_active != active

        # the node picks the new bundle up at its next sync and the SVID at its next rotation
        def chained_to_new_ca() -> x509.Certificate | None:
            leaf: x509.Certificate = svid_of(source).leaf
            return leaf if issued_by(leaf, [old_ca]) is None else None

        leaf = wait_until(chained_to_new_ca, timeout=45, interval=0.3,
                          message="an SVID issued by the new CA")
        served = bundle_authorities(dev.url)
        new_ca = issued_by(leaf, served)
        assert new_ca is not None and new_ca != old_ca
        assert old_ca in served  # the old CA stays trusted until retired
        bundle = source.get_bundle_for_trust_domain(svid_of(source).spiffe_id.trust_domain)
        assert bundle is not None and new_ca in bundle.x509_authorities
        verified = openssl_verify(world / "verify-rotated", svid_of(source).cert_chain, [new_ca])
        assert verified.returncode == 0, verified.stdout + verified.stderr


# --- 3. mTLS between two workloads ----------------------------------------------------------


def test_mtls_between_two_workloads_with_their_workload_api_svids(
    dev: DevPlatform, world: Path
) -> None:
    ledger = AgentPython.create(world / "bin", "ledger")
    pricer = AgentPython.create(world / "bin", "pricer")
    ledger_id = f"spiffe://{TD}/agent/ledger"
    create_entry(dev, ledger_id, ledger.selectors())
    create_entry(dev, f"spiffe://{TD}/agent/pricer/instance/{{instance}}", pricer.selectors())
    fetch_until(ledger, dev.workload_socket)
    fetch_until(pricer, dev.workload_socket)

    server = start_workload(ledger, "mtls_server.py", "--allow-prefix",
                            f"spiffe://{TD}/agent/pricer/instance/", "--connections", "3",
                            socket_uri=dev.workload_socket)
    try:
        lines = Lines(server)
        hello = lines.next()
        assert hello["spiffe_id"] == ledger_id
        port = str(hello["port"])

        call = run_workload(pricer, "mtls_client.py", "--port", port, "--expect-server",
                            ledger_id, socket_uri=dev.workload_socket)
        assert call.ok, call.stdout + call.stderr
        client_id = call.output["client"]
        instance_of(client_id)
        assert call.output["server"] == ledger_id
        assert call.output["reply"] == {"server": ledger_id, "client": client_id}
        assert lines.next() == {"event": "accepted", "client": client_id, "authorized": True}

        # no client certificate: the handshake is refused
        anonymous = run_workload(pricer, "mtls_client.py", "--port", port, "--expect-server",
                                 ledger_id, "--no-svid", socket_uri=dev.workload_socket)
        assert anonymous.returncode == 3 and "error" in anonymous.output
        assert lines.next()["event"] == "refused"

        # a valid SVID of another workload: authenticated, then not authorized by SPIFFE ID
        other = run_workload(ledger, "mtls_client.py", "--port", port, "--expect-server",
                             ledger_id, socket_uri=dev.workload_socket)
        assert other.returncode == 3 and "without answering" in other.output["error"]
        assert lines.next() == {"event": "accepted", "client": ledger_id, "authorized": False}
        assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


# --- 4. per-instance identities -------------------------------------------------------------


def test_each_process_gets_its_own_instance_and_children_record_their_parent(
    dev: DevPlatform, world: Path
) -> None:
    trading = AgentPython.create(world / "bin", "trading")
    entry = create_entry(dev, f"spiffe://{TD}/agent/trading/instance/{{instance}}",
                         trading.selectors())
    first = fetch_until(trading, dev.workload_socket)

    # the same process fetching again, on new connections and for a JWT-SVID, keeps its ID
    same = run_workload(trading, "agent.py", "--fetches", "2", "--pause", "6",
                        "--jwt-audience", "audit", socket_uri=dev.workload_socket)
    assert same.ok, same.stdout + same.stderr
    kept = same.output
    assert len(set(kept["spiffe_ids"])) == 1 and kept["jwt"]["spiffe_id"] == kept["spiffe_id"]

    # the agent restarted: a new process of the same executable gets a new ID
    restarted = run_workload(trading, "agent.py", socket_uri=dev.workload_socket)
    assert restarted.ok, restarted.stderr
    ids = [instance_of(r["spiffe_id"]) for r in (first, kept, restarted.output)]
    assert len(set(ids)) == 3

    tree = run_workload(trading, "agent.py", "--spawn-child", socket_uri=dev.workload_socket)
    assert tree.ok, tree.stdout + tree.stderr
    parent, child = tree.output, tree.output["child"]
    assert "error" not in child, child
    assert child["ppid"] == parent["pid"]
    parent_id, child_id = instance_of(parent["spiffe_id"]), instance_of(child["spiffe_id"])
    assert len({*ids, parent_id, child_id}) == 5

    listed = cli_json(dev, "instances", "list", "--agent", "trading")
    by_id = {i["id"]: i for i in listed}
    assert set(by_id) == {*ids, parent_id, child_id}  # one instance per process, no more
    node_id = dev.node_spiffe_id.rsplit("/", 1)[1]
    for run in (first, kept, restarted.output, parent, child):
        record = by_id[instance_of(run["spiffe_id"])]
        assert record["spiffe_id"] == run["spiffe_id"] and record["agent"] == "trading"
        assert record["pid"] == run["pid"] and record["uid"] == 0
        assert record["node_id"] == node_id and record["entry_id"] == entry["id"]
        assert record["exe_path"] == str(trading.path)
        assert f"unix:path:{trading.path}" in record["selectors"]
        assert record["first_seen_at"] and record["last_seen_at"]
    assert by_id[child_id]["parent_instance_id"] == parent_id
    assert by_id[parent_id]["parent_instance_id"] is None  # started by the test, not an agent
    assert by_id[ids[1]]["parent_instance_id"] is None

    # last-seen follows the fetches (the node reports them in batches every few seconds)
    def seen_later() -> bool:
        record = next(i for i in cli_json(dev, "instances", "list", "--agent", "trading")
                      if i["id"] == ids[1])
        first_seen = datetime.fromisoformat(record["first_seen_at"].replace("Z", "+00:00"))
        last_seen = datetime.fromisoformat(record["last_seen_at"].replace("Z", "+00:00"))
        return last_seen - first_seen >= timedelta(seconds=5)

    wait_until(seen_later, timeout=SYNC_WAIT, interval=1.0,
               message="last_seen_at updated by the second fetch")


# --- 5. refusals: another uid, missing security header --------------------------------------


def test_another_uid_matching_no_entry_gets_permission_denied_and_no_svid(
    dev: DevPlatform, world: Path
) -> None:
    rootonly = AgentPython.create(world / "bin", "rootonly")
    create_entry(dev, f"spiffe://{TD}/agent/rootonly/instance/{{instance}}",
                 rootonly.selectors(uid=0))
    allowed = fetch_until(rootonly, dev.workload_socket)  # control: the same program as root

    denied = run_workload(rootonly, "agent.py", "--jwt-audience", "x",
                          socket_uri=dev.workload_socket, uid=65534)
    assert denied.returncode == 3, denied.stdout + denied.stderr
    assert denied.output["uid"] == 65534
    assert "PERMISSION_DENIED" in denied.output["error"]
    assert "spiffe_id" not in denied.output and "BEGIN" not in denied.stdout
    instances = cli_json(dev, "instances", "list", "--agent", "rootonly")
    assert [i["id"] for i in instances] == [instance_of(allowed["spiffe_id"])]
    assert all(i["uid"] == 0 and i["pid"] != denied.output["pid"] for i in instances)


def test_requests_without_the_security_header_get_invalid_argument(
    dev: DevPlatform, runner_id: str
) -> None:
    wait_for_context(dev.workload_socket, runner_id)
    calls: dict[str, Callable[[Any, Any], Any]] = {
        "FetchX509SVID": lambda stub, md: next(stub.FetchX509SVID(
            pb.X509SVIDRequest(), metadata=md, timeout=10)),
        "FetchX509Bundles": lambda stub, md: next(stub.FetchX509Bundles(
            pb.X509BundlesRequest(), metadata=md, timeout=10)),
        "FetchJWTSVID": lambda stub, md: stub.FetchJWTSVID(
            pb.JWTSVIDRequest(audience=["a"]), metadata=md, timeout=10),
        "FetchJWTBundles": lambda stub, md: next(stub.FetchJWTBundles(
            pb.JWTBundlesRequest(), metadata=md, timeout=10)),
        "ValidateJWTSVID": lambda stub, md: stub.ValidateJWTSVID(
            pb.ValidateJWTSVIDRequest(audience="a", svid="x.y.z"), metadata=md, timeout=10),
    }
    with grpc.insecure_channel(dev.workload_socket.replace("unix://", "unix:", 1)) as channel:
        stub = pb_grpc.SpiffeWorkloadAPIStub(channel)  # type: ignore[no-untyped-call]
        for name, call in calls.items():
            for metadata in ((), (("workload.spiffe.io", "false"),),
                             (("workload.spiffe.io", "TRUE"),)):
                with pytest.raises(grpc.RpcError) as info:
                    call(stub, metadata)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, metadata)
        # control: the same calls with the header are answered
        svids = calls["FetchX509SVID"](stub, HEADER)
        assert [s.spiffe_id for s in svids.svids] == [runner_id]
        assert calls["FetchJWTSVID"](stub, HEADER).svids[0].spiffe_id == runner_id


# --- 6. the node without its server ---------------------------------------------------------


def test_node_serves_cached_svids_while_the_server_is_down_and_resyncs_after(
    world: Path,
) -> None:
    base = world / "outage"
    cached = AgentPython.create(world / "bin", "cached")
    fresh = AgentPython.create(world / "bin", "fresh")
    server = ServerProcess(base / "server", trust_domain=TD).start()
    node: NodeProcess | None = None
    try:
        token = cli_json(server, "token", "generate")["token"]
        node = NodeProcess(server.url, base / "w.sock", base / "node", join_token=token).start()
        socket_uri = node.workload_socket
        create_entry(server, f"spiffe://{TD}/service/cached", cached.selectors(),
                     parent=node.node_spiffe_id)
        before = fetch_until(cached, socket_uri, "--jwt-audience", "ledger")
        assert before["spiffe_id"] == f"spiffe://{TD}/service/cached"

        server.stop()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/bundle", timeout=2)

        during = run_workload(cached, "agent.py", "--jwt-audience", "ledger", "--validate",
                              before["jwt"]["token"], "ledger", socket_uri=socket_uri)
        assert during.ok, during.stdout + during.stderr
        out = during.output
        assert out["spiffe_id"] == before["spiffe_id"] and out["serial"] == before["serial"]
        leaf = x509.load_pem_x509_certificates(out["chain_pem"].encode())[0]
        assert leaf.not_valid_after_utc > datetime.now(UTC)
        authorities = x509.load_pem_x509_certificates(before["bundle_pem"].encode())
        assert issued_by(leaf, authorities) is not None
        assert out["jwt"]["spiffe_id"] == before["spiffe_id"]
        assert out["validated"] == before["spiffe_id"]  # by the node, with its cached bundle

        server.start()  # same data dir and ports
        create_entry(server, f"spiffe://{TD}/service/after-restart", fresh.selectors(),
                     parent=node.node_spiffe_id)
        after = fetch_until(fresh, socket_uri, timeout=60)
        assert after["spiffe_id"] == f"spiffe://{TD}/service/after-restart"
        again = run_workload(cached, "agent.py", socket_uri=socket_uri)
        assert again.ok and again.output["spiffe_id"] == before["spiffe_id"], again.stderr
        assert node.running
    finally:
        if node is not None:
            node.stop()
        server.stop()


# --- 7. join tokens -------------------------------------------------------------------------


def _refusal_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one human line the node printed (log records are JSON lines)."""
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text
    human = [line for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("{")]
    assert len(human) == 1, text
    return human[0]


def test_used_and_expired_join_tokens_are_refused_by_tabard_node(
    dev: DevPlatform, world: Path
) -> None:
    base = world / "tokens"
    used = cli_json(dev, "token", "generate", "--ttl", "10m")["token"]
    first = NodeProcess(dev.url, base / "n1.sock", base / "n1", join_token=used)
    with first:
        assert first.node_spiffe_id.startswith(f"spiffe://{TD}/node/")

    again = NodeProcess(dev.url, base / "n2.sock", base / "n2", join_token=used).run_to_exit()
    assert again.returncode != 0
    line = _refusal_line(again)
    assert "used" in line.lower() and used not in line

    short = cli_json(dev, "token", "generate", "--ttl", "1s")
    expires = datetime.fromisoformat(short["expires_at"].replace("Z", "+00:00"))
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 1.0)
    late = NodeProcess(dev.url, base / "n3.sock", base / "n3",
                       join_token=short["token"]).run_to_exit()
    assert late.returncode != 0
    line = _refusal_line(late)
    assert "expired" in line.lower() and short["token"] not in line
    nodes = cli_json(dev, "nodes", "list")
    assert first.node_spiffe_id.rsplit("/", 1)[1] in {n["id"] for n in nodes}
    assert len(nodes) == 2  # tabard dev's own node and the first one, nothing else
