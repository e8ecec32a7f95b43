"""The node API end to end, over the real application and stores (SQLite and PostgreSQL).

Requests go through Starlette's TestClient into ``create_app``, wrapped in a small ASGI
middleware that puts a client certificate chain into the scope the way the node API
listener does; certificates are minted by real ``Authority`` objects.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.testclient import TestClient

from tabard.app import ControlPlane, build_control_plane
from tabard.authority import Authority, MemoryKeyManager
from tabard.clock import FakeClock
from tabard.config import Settings
from tabard.server import create_app
from tabard.spiffe import SpiffeId, TrustDomain
from tests.fakes.authority_store import InMemoryAuthorityStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TD = "example.org"
SHA = hashlib.sha256(b"python3").hexdigest()
Scope = MutableMapping[str, Any]


class WithClientCert:
    """What the node API listener does: the peer's chain (DER, leaf first) in the scope."""

    def __init__(self, app: Any, chain: list[bytes]) -> None:
        self.app, self.chain = app, chain

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": list(self.chain)}
        await self.app(scope, receive, send)


@dataclass
class Env:
    plane: ControlPlane
    clock: FakeClock
    app: Any
    admin: TestClient

    def client(self, chain: list[bytes] | None = None) -> TestClient:
        return TestClient(WithClientCert(self.app, chain or []))

    def token(self, ttl: str | None = None) -> dict[str, Any]:
        response = self.admin.post("/api/v1/join-tokens", json={"ttl": ttl} if ttl else {})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def attest(self, token: str | None = None) -> AttestedNode:
        key = ec.generate_private_key(ec.SECP256R1())
        body = {"attestor": "join_token", "join_token": token or self.token()["token"],
                "csr": csr_pem(key)}
        response = self.client().post("/node/v1/attest", json=body)
        assert response.status_code == 200, response.text
        data = response.json()
        chain = [c.public_bytes(serialization.Encoding.DER)
                 for c in x509.load_pem_x509_certificates(data["svid_pem"].encode())]
        return AttestedNode(data, key, self.client(chain))

    def entry(self, parent: str, spiffe_id: str = f"spiffe://{TD}/agent/trading/instance/"
              "{instance}", **extra: Any) -> dict[str, Any]:
        body = {"spiffe_id": spiffe_id, "parent_id": parent,
                "selectors": ["unix:uid:1000", "unix:path:/usr/bin/python3"], **extra}
        response = self.admin.post("/api/v1/entries", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())


@dataclass
class AttestedNode:
    data: dict[str, Any]
    key: ec.EllipticCurvePrivateKey
    http: TestClient

    @property
    def spiffe_id(self) -> str:
        return str(self.data["spiffe_id"])

    def register(self, entry_id: str, pid: int = 4242, start_time: float = 1000.5,
                 parent: str | None = None, **extra: Any) -> Any:
        body = {"entry_id": entry_id, "pid": pid, "start_time": start_time, "uid": 1000,
                "gid": 1000, "exe_path": "/usr/bin/python3", "exe_sha256": SHA,
                "selectors": ["unix:uid:1000", "unix:gid:1000", "unix:path:/usr/bin/python3",
                              f"unix:sha256:{SHA}"],
                "parent_instance_id": parent, **extra}
        return self.http.post("/node/v1/instances", json=body)


def csr_pem(key: ec.EllipticCurvePrivateKey | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def uri_of(pem: str) -> str:
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return str(san.get_values_for_type(x509.UniformResourceIdentifier)[0])


def leaf_of(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.encode())[0]


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.delenv("TABARD_KEK", raising=False)
    clock = FakeClock(T0)
    settings = Settings(trust_domain=TD, data_dir=tmp_path / "data", database_url=database_url)
    plane = build_control_plane(settings, clock=clock)
    app = create_app(plane.server_services())
    admin = TestClient(app, headers={
        "Authorization": f"Bearer {plane.admin_tokens.create('test').token}"})
    try:
        yield Env(plane, clock, app, admin)
    finally:
        plane.close()


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


# --- attestation ----------------------------------------------------------------------------


def test_attest_with_a_fresh_token_returns_a_node_svid_and_the_bundle(env: Env) -> None:
    token = env.token()
    node = env.attest(token["token"])
    node_id = node.data["node_id"]
    assert node.spiffe_id == f"spiffe://{TD}/node/{node_id}" and len(node_id) == 32
    assert uri_of(node.data["svid_pem"]) == node.spiffe_id
    leaf = leaf_of(node.data["svid_pem"])
    assert leaf.public_key().public_numbers() == node.key.public_key().public_numbers()
    assert leaf.not_valid_after_utc == T0 + timedelta(hours=1)
    assert datetime.fromisoformat(node.data["expires_at"]) == T0 + timedelta(hours=1)
    assert {k["use"] for k in node.data["bundle"]["keys"]} == {"x509-svid", "jwt-svid"}
    listed = env.admin.get(f"/api/v1/nodes/{node_id}").json()
    assert listed["attestor"] == "join_token" and not listed["banned"]
    assert listed["selectors"] == [f"join_token:{token['id']}"]
    assert datetime.fromisoformat(listed["attested_at"]) == T0
    assert [n["id"] for n in env.admin.get("/api/v1/nodes").json()] == [node_id]


def test_used_expired_and_unknown_tokens_are_refused(env: Env) -> None:
    token = env.token()["token"]
    env.attest(token)
    body = {"attestor": "join_token", "join_token": token, "csr": csr_pem()}
    used = problem(env.client().post("/node/v1/attest", json=body), 401, "invalid_join_token")
    assert "already used" in used["detail"]

    short = env.token("1m")["token"]
    env.clock.advance(timedelta(minutes=2))
    expired = env.client().post("/node/v1/attest", json={**body, "join_token": short})
    assert "expired" in problem(expired, 401, "invalid_join_token")["detail"]

    unknown = env.client().post("/node/v1/attest", json={**body, "join_token": "tabard_join_x"})
    assert "unknown" in problem(unknown, 401, "invalid_join_token")["detail"]
    assert token not in used["detail"]
    assert len(env.admin.get("/api/v1/nodes").json()) == 1


def test_bad_attestation_requests(env: Env) -> None:
    token = env.token()["token"]
    bad_csr = {"attestor": "join_token", "join_token": token, "csr": "not a csr"}
    problem(env.client().post("/node/v1/attest", json=bad_csr), 400, "invalid")
    other = {"attestor": "x509pop", "join_token": token, "csr": csr_pem()}
    problem(env.client().post("/node/v1/attest", json=other), 400, "unknown_attestor")
    env.attest(token)  # neither refusal used the token up


def test_concurrent_attestations_with_one_token_have_one_winner(env: Env) -> None:
    token = env.token()["token"]
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def attest() -> None:
        client = env.client()
        body = {"attestor": "join_token", "join_token": token, "csr": csr_pem()}
        barrier.wait()
        statuses.append(client.post("/node/v1/attest", json=body).status_code)

    threads = [threading.Thread(target=attest) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 401, 401, 401]
    assert len(env.admin.get("/api/v1/nodes").json()) == 1


def test_renew_mints_a_new_node_svid(env: Env) -> None:
    node = env.attest()
    env.clock.advance(timedelta(minutes=40))
    key = ec.generate_private_key(ec.SECP256R1())
    renewed = node.http.post("/node/v1/renew", json={"csr": csr_pem(key)})
    assert renewed.status_code == 200, renewed.text
    data = renewed.json()
    assert data["node_id"] == node.data["node_id"] and uri_of(data["svid_pem"]) == node.spiffe_id
    assert leaf_of(data["svid_pem"]).not_valid_after_utc == T0 + timedelta(minutes=100)


# --- authentication of node calls ---------------------------------------------------------------


def test_calls_without_a_valid_node_svid_are_refused(env: Env, tmp_path: Path) -> None:
    node = env.attest()
    none = env.client().post("/node/v1/sync", json={})
    problem(none, 401, "node_unauthenticated")
    garbage = env.client([b"not a certificate"]).post("/node/v1/sync", json={})
    problem(garbage, 401, "node_unauthenticated")

    # an SVID of the same trust domain and the same node ID, from a CA tabard does not trust
    foreign = Authority(TrustDomain(TD), MemoryKeyManager(), InMemoryAuthorityStore(),
                        env.clock)
    foreign.ensure_initialized()
    forged = foreign.mint_x509_svid(SpiffeId.parse(node.spiffe_id))
    chain = [c.public_bytes(serialization.Encoding.DER) for c in forged.chain]
    problem(env.client(chain).post("/node/v1/sync", json={}), 401, "node_unauthenticated")

    # a genuine SVID whose ID is not a node's, and one of a node that does not exist
    for spiffe_id in (f"spiffe://{TD}/web", f"spiffe://{TD}/node/{'f' * 32}"):
        svid = env.plane.authority.mint_x509_svid(SpiffeId.parse(spiffe_id))
        chain = [c.public_bytes(serialization.Encoding.DER) for c in svid.chain]
        problem(env.client(chain).post("/node/v1/sync", json={}), 401, "node_unauthenticated")

    # the node's own SVID once expired
    assert node.http.post("/node/v1/sync", json={}).status_code == 200
    env.clock.advance(timedelta(hours=1, seconds=1))
    problem(node.http.post("/node/v1/sync", json={}), 401, "node_unauthenticated")


def test_a_banned_node_is_refused_at_once(env: Env) -> None:
    node = env.attest()
    assert node.http.post("/node/v1/sync", json={}).status_code == 200
    banned = env.admin.post(f"/api/v1/nodes/{node.data['node_id']}/ban")
    assert banned.status_code == 200 and banned.json()["banned"]
    problem(node.http.post("/node/v1/sync", json={}), 401, "node_unauthenticated")
    problem(node.http.post("/node/v1/renew", json={"csr": csr_pem()}), 401,
            "node_unauthenticated")
    problem(env.admin.post(f"/api/v1/nodes/{'0' * 32}/ban"), 404, "node_not_found")


# --- sync and entries -----------------------------------------------------------------------


def test_sync_returns_the_node_s_entries_and_a_growing_revision(env: Env) -> None:
    a, b = env.attest(), env.attest()
    empty = a.http.post("/node/v1/sync", json={}).json()
    assert empty["revision"] == 0 and empty["entries"] == [] and empty["federated_bundles"] == {}
    assert empty["bundle"]["keys"]
    first = env.entry(a.spiffe_id)
    env.entry(b.spiffe_id)
    synced = a.http.post("/node/v1/sync", json={}).json()
    assert synced["revision"] == 1 and [e["id"] for e in synced["entries"]] == [first["id"]]
    assert synced["entries"][0] == first
    env.admin.patch(f"/api/v1/entries/{first['id']}", json={"hint": "x"})
    assert a.http.post("/node/v1/sync", json={}).json()["revision"] == 2
    env.admin.delete(f"/api/v1/entries/{first['id']}")
    after = a.http.post("/node/v1/sync", json={}).json()
    assert after["revision"] == 3 and after["entries"] == []
    assert b.http.post("/node/v1/sync", json={}).json()["revision"] == 1


# --- instances --------------------------------------------------------------------------------


def test_instances_same_process_same_id_new_process_new_id(env: Env) -> None:
    node = env.attest()
    entry = env.entry(node.spiffe_id)
    first = node.register(entry["id"])
    assert first.status_code == 200, first.text
    data = first.json()
    assert data["created"] and len(data["instance_id"]) == 26
    assert data["spiffe_id"] == f"spiffe://{TD}/agent/trading/instance/{data['instance_id']}"
    again = node.register(entry["id"]).json()
    assert again == {**data, "created": False}
    restarted = node.register(entry["id"], start_time=2000.25).json()
    other_pid = node.register(entry["id"], pid=4243).json()
    ids = {data["instance_id"], restarted["instance_id"], other_pid["instance_id"]}
    assert len(ids) == 3 and restarted["created"] and other_pid["created"]

    listed = env.admin.get("/api/v1/instances", params={"agent": "trading"}).json()
    assert {i["id"] for i in listed} == ids
    old = next(i for i in listed if i["id"] == data["instance_id"])
    assert old["retired_at"] is not None and old["node_id"] == node.data["node_id"]
    assert old["exe_sha256"] == SHA and old["pid"] == 4242 and old["start_time"] == 1000.5
    assert f"unix:sha256:{SHA}" in old["selectors"]
    assert env.admin.get("/api/v1/instances", params={"agent": "billing"}).json() == []


def test_child_process_records_its_parent_instance_of_the_same_node_only(env: Env) -> None:
    a, b = env.attest(), env.attest()
    entry_a, entry_b = env.entry(a.spiffe_id), env.entry(b.spiffe_id)
    parent = a.register(entry_a["id"], pid=10).json()["instance_id"]
    foreign = b.register(entry_b["id"], pid=10).json()["instance_id"]
    child = a.register(entry_a["id"], pid=11, parent=parent).json()["instance_id"]
    stray = a.register(entry_a["id"], pid=12, parent=foreign).json()["instance_id"]
    got = {i["id"]: i for i in env.admin.get("/api/v1/instances").json()}
    assert got[child]["parent_instance_id"] == parent
    assert got[stray]["parent_instance_id"] is None


def test_instances_are_refused_for_other_nodes_plain_entries_and_missing_selectors(
        env: Env) -> None:
    a, b = env.attest(), env.attest()
    theirs = env.entry(b.spiffe_id)
    problem(a.register(theirs["id"]), 403, "not_your_entry")
    problem(a.register("00000000-0000-4000-8000-000000000000"), 403, "not_your_entry")
    plain = env.entry(a.spiffe_id, spiffe_id=f"spiffe://{TD}/web")
    problem(a.register(plain["id"]), 400, "not_a_template")
    mine = env.entry(a.spiffe_id)
    problem(a.register(mine["id"], selectors=["unix:uid:1000"]), 403, "selectors_mismatch")
    problem(a.register(mine["id"], exe_path="python3"), 400, "invalid_instance")
    problem(a.register(mine["id"], pid=0), 400, "invalid_instance")


def test_instances_seen_updates_last_seen_of_own_instances(env: Env) -> None:
    a, b = env.attest(), env.attest()
    mine = a.register(env.entry(a.spiffe_id)["id"]).json()["instance_id"]
    theirs = b.register(env.entry(b.spiffe_id)["id"]).json()["instance_id"]
    env.clock.advance(timedelta(seconds=30))
    seen = a.http.post("/node/v1/instances/seen", json={"instance_ids": [mine, theirs]})
    assert seen.json() == {"updated": 1}
    got = {i["id"]: i for i in env.admin.get("/api/v1/instances").json()}
    assert datetime.fromisoformat(got[mine]["last_seen_at"]) == T0 + timedelta(seconds=30)
    assert datetime.fromisoformat(got[theirs]["last_seen_at"]) == T0


# --- SVIDs of entries ---------------------------------------------------------------------------


def test_x509_svids_use_the_entry_ttl_dns_names_and_resolved_instance(env: Env) -> None:
    node = env.attest()
    template = env.entry(node.spiffe_id, x509_svid_ttl=600, dns_names=["trading.example.org"])
    plain = env.entry(node.spiffe_id, spiffe_id=f"spiffe://{TD}/web")
    instance = node.register(template["id"]).json()["instance_id"]
    response = node.http.post("/node/v1/svids/x509", json={"requests": [
        {"entry_id": template["id"], "instance_id": instance, "csr": csr_pem()},
        {"entry_id": plain["id"], "instance_id": None, "csr": csr_pem()},
    ]})
    assert response.status_code == 200, response.text
    first, second = response.json()["svids"]
    assert first["spiffe_id"] == f"spiffe://{TD}/agent/trading/instance/{instance}"
    assert uri_of(first["svid_pem"]) == first["spiffe_id"] and first["instance_id"] == instance
    leaf = leaf_of(first["svid_pem"])
    assert leaf.not_valid_after_utc == T0 + timedelta(seconds=600)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["trading.example.org"]
    assert second["spiffe_id"] == f"spiffe://{TD}/web" and second["instance_id"] is None
    assert leaf_of(second["svid_pem"]).not_valid_after_utc == T0 + timedelta(hours=1)


def test_svids_are_refused_for_what_is_not_the_node_s(env: Env) -> None:
    a, b = env.attest(), env.attest()
    mine, theirs = env.entry(a.spiffe_id), env.entry(b.spiffe_id)
    their_instance = b.register(theirs["id"]).json()["instance_id"]
    cases = [
        {"entry_id": theirs["id"], "instance_id": their_instance},  # another node's entry
        {"entry_id": mine["id"], "instance_id": None},  # template without an instance
        {"entry_id": mine["id"], "instance_id": their_instance},  # instance of another node
    ]
    for case in cases:
        response = a.http.post("/node/v1/svids/x509",
                               json={"requests": [{**case, "csr": csr_pem()}]})
        problem(response, 403, "not_your_entry")
        jwt_response = a.http.post("/node/v1/svids/jwt", json={**case, "audience": ["x"]})
        problem(jwt_response, 403, "not_your_entry")
    # one bad request refuses the whole batch
    own = a.register(mine["id"]).json()["instance_id"]
    batch = a.http.post("/node/v1/svids/x509", json={"requests": [
        {"entry_id": mine["id"], "instance_id": own, "csr": csr_pem()},
        {"entry_id": theirs["id"], "instance_id": their_instance, "csr": csr_pem()},
    ]})
    problem(batch, 403, "not_your_entry")
    too_many = a.http.post("/node/v1/svids/x509", json={"requests": [
        {"entry_id": mine["id"], "instance_id": own, "csr": "x"}] * 501})
    problem(too_many, 400, "invalid_request")


def test_jwt_svid_for_an_instance_with_the_entry_ttl_as_cap(env: Env) -> None:
    node = env.attest()
    entry = env.entry(node.spiffe_id, jwt_svid_ttl=120)
    instance = node.register(entry["id"]).json()["instance_id"]
    env.clock.advance(timedelta(seconds=5))
    response = node.http.post("/node/v1/svids/jwt", json={
        "entry_id": entry["id"], "instance_id": instance, "audience": ["billing"],
        "ttl_seconds": 3600})
    assert response.status_code == 200, response.text
    data = response.json()
    claims = jwt.decode(data["token"], options={"verify_signature": False})
    assert claims["sub"] == data["spiffe_id"] == (
        f"spiffe://{TD}/agent/trading/instance/{instance}")
    assert claims["aud"] in ("billing", ["billing"])
    expected = T0 + timedelta(seconds=125)
    assert claims["exp"] == int(expected.timestamp())
    assert datetime.fromisoformat(data["expires_at"]) == expected
    got = env.admin.get(f"/api/v1/instances/{instance}").json()
    assert datetime.fromisoformat(got["last_seen_at"]) == T0 + timedelta(seconds=5)
