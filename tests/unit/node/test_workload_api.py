"""The Workload API over a real Unix socket, driven by py-spiffe and raw gRPC clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from spiffe import JwtSource, WorkloadApiClient, X509Source

from tabard.node._proto import workload_pb2 as pb
from tabard.node._proto import workload_pb2_grpc as pb_grpc
from tests.unit.node.conftest import PYTHON, UID_SELECTORS, RunningNode

HEADER = (("workload.spiffe.io", "true"),)

# A workload: fetches its X509-SVID through py-spiffe and prints what it got.
FETCH = textwrap.dedent(
    """
    import json, os, sys
    from spiffe import WorkloadApiClient
    with WorkloadApiClient(socket_path=sys.argv[1]) as client:
        svid = client.fetch_x509_svid(timeout=20)
    print(json.dumps({"pid": os.getpid(), "spiffe_id": str(svid.spiffe_id)}), flush=True)
    """
)

# A workload that fetches, then starts a child workload that fetches too.
FETCH_THEN_SPAWN = FETCH + textwrap.dedent(
    """
    import subprocess
    code = open(sys.argv[2]).read()
    out = subprocess.run([sys.executable, sys.argv[2], sys.argv[1]], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    print(out.strip(), flush=True)
    """
)


def _run(script: str, *args: str, tmp: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    path = tmp / f"w{time.monotonic_ns()}.py"
    path.write_text(script)
    path.chmod(0o644)
    python = kwargs.pop("python", None)
    # another interpreter gets only the stdlib and PYTHONPATH (-S: no site-packages of its own)
    command = [sys.executable] if python is None else [python, "-S"]
    result: subprocess.CompletedProcess[str] = subprocess.run(
        [*command, str(path), *args],
        capture_output=True, text=True, timeout=90, **kwargs,  # type: ignore[call-overload]
    )
    return result


def _stub(channel: grpc.Channel) -> Any:
    return pb_grpc.SpiffeWorkloadAPIStub(channel)  # type: ignore[no-untyped-call]


def _channel(node: RunningNode) -> grpc.Channel:
    return grpc.insecure_channel("unix:" + str(node.socket_path))


def _status(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()


def test_py_spiffe_fetches_x509_context_bundles_and_jwt(node: RunningNode) -> None:
    node.add_entry("spiffe://example.org/agent/billing", UID_SELECTORS, hint="internal")
    with WorkloadApiClient(socket_path=node.uri) as client:
        context = client.fetch_x509_context(timeout=20)
        svid = context.default_svid
        assert str(svid.spiffe_id) == "spiffe://example.org/agent/billing"
        leaf = svid.leaf
        assert leaf.public_key() == svid.private_key.public_key()
        root = node.fake.bundle.x509_authorities[0]
        leaf.verify_directly_issued_by(root)
        bundle = context.x509_bundle_set.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        assert bundle is not None and root in bundle.x509_authorities

        bundles = client.fetch_x509_bundles(timeout=20)
        assert [str(b.trust_domain) for b in bundles.bundles] == ["example.org"]

        jwt_bundles = client.fetch_jwt_bundles(timeout=20)
        jwt_bundle = jwt_bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        assert jwt_bundle is not None and jwt_bundle.get_jwt_authority("jwt-1") is not None

        token = client.fetch_jwt_svid(audience={"payments"}, timeout=20)
        assert str(token.spiffe_id) == "spiffe://example.org/agent/billing"
        assert token.audience == {"payments"}

        validated = client.validate_jwt_svid(token.token, "payments", timeout=20)
        assert str(validated.spiffe_id) == "spiffe://example.org/agent/billing"
        with _channel(node) as channel:  # py-spiffe drops the claims; read them raw
            raw = _stub(channel).ValidateJWTSVID(
                pb.ValidateJWTSVIDRequest(audience="payments", svid=token.token),
                metadata=HEADER, timeout=10,
            )
        assert raw.spiffe_id == "spiffe://example.org/agent/billing"
        assert raw.claims["sub"] == "spiffe://example.org/agent/billing"
        assert raw.claims["aud"] == "payments"
        assert raw.claims["exp"] > time.time()

        # the JWT-SVID is cached until half-life: a second fetch mints nothing new
        minted = node.fake.calls["mint_jwt_svid"]
        again = client.fetch_jwt_svid(audience={"payments"}, timeout=20)
        assert again.token == token.token
        assert node.fake.calls["mint_jwt_svid"] == minted

        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            client.validate_jwt_svid(token.token, "someone-else", timeout=20)


def test_jwt_source_and_explicit_spiffe_id(node: RunningNode) -> None:
    node.add_entry("spiffe://example.org/a", UID_SELECTORS)
    node.add_entry("spiffe://example.org/b", UID_SELECTORS)
    with WorkloadApiClient(socket_path=node.uri) as client:
        svids = client.fetch_jwt_svids(audience={"x"}, timeout=20)
        assert sorted(str(s.spiffe_id) for s in svids) == [
            "spiffe://example.org/a", "spiffe://example.org/b"
        ]
        from spiffe import SpiffeId as PySpiffeId

        only_b = client.fetch_jwt_svid(
            audience={"x"}, subject=PySpiffeId("spiffe://example.org/b"), timeout=20
        )
        assert str(only_b.spiffe_id) == "spiffe://example.org/b"
        with pytest.raises(Exception, match="PERMISSION_DENIED"):
            client.fetch_jwt_svid(
                audience={"x"}, subject=PySpiffeId("spiffe://example.org/c"), timeout=20
            )
    with JwtSource(workload_api_client=WorkloadApiClient(socket_path=node.uri)) as source:
        assert source.get_bundle_for_trust_domain(
            __import__("spiffe").TrustDomain("example.org")
        ) is not None


def test_missing_security_header_is_invalid_argument(node: RunningNode) -> None:
    node.add_entry("spiffe://example.org/a", UID_SELECTORS)
    with _channel(node) as channel:
        stub = _stub(channel)
        assert _status(lambda: next(iter(stub.FetchX509SVID(pb.X509SVIDRequest(), timeout=10)))) \
            == grpc.StatusCode.INVALID_ARGUMENT
        assert _status(
            lambda: stub.FetchJWTSVID(pb.JWTSVIDRequest(audience=["a"]), timeout=10)
        ) == grpc.StatusCode.INVALID_ARGUMENT
        assert _status(
            lambda: stub.ValidateJWTSVID(
                pb.ValidateJWTSVIDRequest(audience="a", svid="x"),
                metadata=(("workload.spiffe.io", "TRUE"),), timeout=10,
            )
        ) == grpc.StatusCode.INVALID_ARGUMENT
        # with the header the same call goes through
        response = next(iter(stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=HEADER, timeout=10)))
        assert response.svids[0].spiffe_id == "spiffe://example.org/a"
        # empty audience is refused, WIT profile is not served
        assert _status(
            lambda: stub.FetchJWTSVID(pb.JWTSVIDRequest(), metadata=HEADER, timeout=10)
        ) == grpc.StatusCode.INVALID_ARGUMENT
        assert _status(
            lambda: next(iter(stub.FetchWITSVID(pb.WITSVIDRequest(), metadata=HEADER, timeout=10)))
        ) == grpc.StatusCode.UNIMPLEMENTED


def test_no_matching_entry_is_permission_denied(node: RunningNode) -> None:
    node.add_entry("spiffe://example.org/other", ("unix:uid:4242",))
    with _channel(node) as channel:
        stub = _stub(channel)
        req = {"metadata": HEADER, "timeout": 10}
        for call in (
            lambda: next(iter(stub.FetchX509SVID(pb.X509SVIDRequest(), **req))),
            lambda: next(iter(stub.FetchX509Bundles(pb.X509BundlesRequest(), **req))),
            lambda: next(iter(stub.FetchJWTBundles(pb.JWTBundlesRequest(), **req))),
            lambda: stub.FetchJWTSVID(pb.JWTSVIDRequest(audience=["a"]), **req),
        ):
            assert _status(call) == grpc.StatusCode.PERMISSION_DENIED
    assert node.fake.calls["mint_x509_svids"] == 1  # only the pre-minted SVID of the entry
    with WorkloadApiClient(socket_path=node.uri) as client, pytest.raises(
        Exception, match="PERMISSION_DENIED"
    ):
        client.fetch_x509_svid(timeout=10)


def _python_for_other_uid() -> tuple[str, str]:
    """An interpreter of this Python version that uid 65534 can execute, and site-packages."""
    site = str(Path(grpc.__file__).resolve().parents[1])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (PYTHON, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        path = Path(candidate)
        if not path.exists():
            continue
        dirs = [*path.parents, *Path(site).parents, Path(site)]
        if all(os.stat(d).st_mode & 0o001 for d in dirs):
            return candidate, site
    raise AssertionError("no Python interpreter is executable by uid 65534 on this machine")


def test_other_uid_matching_no_entry_gets_permission_denied(
    node: RunningNode, short_dir: Path
) -> None:
    python, site = _python_for_other_uid()
    exe = os.path.realpath(python)
    node.add_entry("spiffe://example.org/root-only", ("unix:uid:0", f"unix:path:{exe}"))
    env = {"PYTHONPATH": site, "PATH": "/usr/bin:/bin"}

    def drop() -> None:
        os.setgid(65534)
        os.setgroups([])
        os.setuid(65534)

    denied = _run(FETCH, node.uri, tmp=short_dir, python=python, env=env, preexec_fn=drop)
    assert denied.returncode != 0
    assert "PERMISSION_DENIED" in denied.stderr
    assert "BEGIN" not in denied.stdout
    # control: the same interpreter and script as uid 0 gets the SVID
    allowed = _run(FETCH, node.uri, tmp=short_dir, python=python, env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["spiffe_id"] == "spiffe://example.org/root-only"


def test_two_processes_get_two_instance_ids_and_children_their_parent(
    node: RunningNode, short_dir: Path
) -> None:
    node.add_entry("spiffe://example.org/agent/trading/instance/{instance}", UID_SELECTORS)
    first = _run(FETCH, node.uri, tmp=short_dir)
    second = _run(FETCH, node.uri, tmp=short_dir)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["spiffe_id"].startswith("spiffe://example.org/agent/trading/instance/")
    assert a["spiffe_id"] != b["spiffe_id"]
    assert len(a["spiffe_id"].rsplit("/", 1)[1]) == 26

    child_script = short_dir / "child.py"
    child_script.write_text(FETCH)
    tree = _run(FETCH_THEN_SPAWN, node.uri, str(child_script), tmp=short_dir)
    assert tree.returncode == 0, tree.stderr
    parent_out, child_out = (json.loads(line) for line in tree.stdout.splitlines())
    parent_id = parent_out["spiffe_id"].rsplit("/", 1)[1]
    child_id = child_out["spiffe_id"].rsplit("/", 1)[1]
    assert parent_id != child_id
    child = node.fake.instance_by_id(child_id)
    assert child.parent_instance_id == parent_id
    assert child.pid == child_out["pid"]
    assert node.fake.instance_by_id(parent_id).parent_instance_id is None


def test_same_process_keeps_its_instance_id(node: RunningNode) -> None:
    node.add_entry("spiffe://example.org/agent/x/instance/{instance}", UID_SELECTORS)
    with WorkloadApiClient(socket_path=node.uri) as client:
        ids = {str(client.fetch_x509_svid(timeout=20).spiffe_id) for _ in range(3)}
        ids |= {str(client.fetch_jwt_svid(audience={"a"}, timeout=20).spiffe_id)}
    assert len(ids) == 1
    assert node.fake.calls["register_instance"] == 1
    deadline = time.monotonic() + 5
    instance_id = ids.pop().rsplit("/", 1)[1]
    while node.fake.seen[instance_id] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.fake.seen[instance_id] >= 1


def test_x509_source_sees_rotation(node: RunningNode) -> None:
    node.add_entry("spiffe://example.org/rotating", UID_SELECTORS, x509_ttl=4)
    updated = threading.Event()
    with X509Source(workload_api_client=WorkloadApiClient(socket_path=node.uri)) as source:
        first = source.get_x509_context().default_svid.leaf.serial_number
        source.subscribe_for_updates(updated.set)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if source.get_x509_context().default_svid.leaf.serial_number != first:
                break
            updated.wait(0.2)
        assert source.get_x509_context().default_svid.leaf.serial_number != first
        assert updated.is_set()
        assert str(source.get_x509_context().default_svid.spiffe_id) == "spiffe://example.org/rotating"


def test_entry_changes_are_pushed_and_removal_ends_the_stream(node: RunningNode) -> None:
    entry = node.add_entry("spiffe://example.org/one", UID_SELECTORS)
    with _channel(node) as channel:
        stub = _stub(channel)
        stream = stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=HEADER, timeout=30)
        first = next(stream)
        assert [s.spiffe_id for s in first.svids] == ["spiffe://example.org/one"]
        node.add_entry("spiffe://example.org/two", UID_SELECTORS)
        second = next(stream)
        assert [s.spiffe_id for s in second.svids] == [
            "spiffe://example.org/one", "spiffe://example.org/two"
        ]
        x509.load_der_x509_certificate(second.svids[1].x509_svid)  # one certificate, DER
        node.fake.remove_entry(entry.id)
        third = next(stream)
        assert [s.spiffe_id for s in third.svids] == ["spiffe://example.org/two"]
        node.fake.remove_entry(next(iter(node.fake.entries)))
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_federated_bundles_follow_federates_with(node: RunningNode) -> None:
    from tests.unit.node.fake_server import FakeNodeServer

    partner = FakeNodeServer("partner.example")
    node.fake.federated[partner.trust_domain] = partner.bundle
    node.add_entry(
        "spiffe://example.org/fed", UID_SELECTORS, federates_with=["spiffe://partner.example"]
    )
    with WorkloadApiClient(socket_path=node.uri) as client:
        deadline = time.monotonic() + 10
        while True:
            context = client.fetch_x509_context(timeout=20)
            tds = sorted(str(b.trust_domain) for b in context.x509_bundle_set.bundles)
            if tds == ["example.org", "partner.example"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert tds == ["example.org", "partner.example"]
        jwt = client.fetch_jwt_bundles(timeout=20)
        assert sorted(str(b.trust_domain) for b in jwt.bundles) == [
            "example.org", "partner.example"
        ]
        # a partner JWT-SVID validates against the federated bundle
        from tabard.spiffe import SpiffeId

        token = partner.signer.mint(SpiffeId.parse("spiffe://partner.example/svc"), "us")
        assert str(client.validate_jwt_svid(token, "us", timeout=20).spiffe_id) == (
            "spiffe://partner.example/svc"
        )


def test_cached_svids_are_served_while_the_server_is_down(node: RunningNode) -> None:
    node.add_entry("spiffe://example.org/steady", UID_SELECTORS)
    with WorkloadApiClient(socket_path=node.uri) as client:
        before = client.fetch_x509_svid(timeout=20)
        token = client.fetch_jwt_svid(audience={"a"}, timeout=20)
        node.fake.available = False
        time.sleep(0.5)  # a few failed syncs
        assert not node.agent.server_reachable
        during = client.fetch_x509_svid(timeout=20)
        assert during.leaf.serial_number == before.leaf.serial_number
        assert client.fetch_jwt_svid(audience={"a"}, timeout=20).token == token.token
        with pytest.raises(Exception, match="UNAVAILABLE"):
            client.fetch_jwt_svid(audience={"new-audience"}, timeout=20)
        node.fake.available = True
        node.add_entry("spiffe://example.org/after", UID_SELECTORS)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ids = {str(s.spiffe_id) for s in client.fetch_x509_svids(timeout=20)}
            if "spiffe://example.org/after" in ids:
                break
            time.sleep(0.1)
        assert ids == {"spiffe://example.org/steady", "spiffe://example.org/after"}
        assert node.agent.server_reachable


def test_a_new_entry_works_at_once_without_waiting_for_the_poll(
    fake: Any, short_dir: Path
) -> None:
    from dataclasses import replace

    from tests.unit.node.conftest import FAST, start_node

    slow = start_node(fake, short_dir, timings=replace(FAST, sync_interval=3600.0))
    try:
        syncs = fake.calls["sync"]
        with _channel(slow) as channel:  # matching nothing: at most one extra sync a second
            stub = _stub(channel)
            for _ in range(5):
                with pytest.raises(grpc.RpcError):
                    stub.FetchJWTSVID(pb.JWTSVIDRequest(audience=["a"]),
                                      metadata=HEADER, timeout=5)
        assert 1 <= fake.calls["sync"] - syncs <= 2
        time.sleep(1.1)
        fake.add_entry("spiffe://example.org/late", UID_SELECTORS)  # the node is not told
        with WorkloadApiClient(socket_path=slow.uri) as client:
            svid = client.fetch_x509_svid(timeout=10)
        assert str(svid.spiffe_id) == "spiffe://example.org/late"
    finally:
        slow.service.stop()
