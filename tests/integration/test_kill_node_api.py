"""The node API under the kill switch: a node reads the signal state and stream with its
X509-SVID (no admin token), and the server refuses SVIDs for a suspended instance or node
even to a node that has not heard of it yet."""

from __future__ import annotations

from urllib.parse import quote

from tests.integration.test_node_api import Env, csr_pem, env  # noqa: F401 (fixture)


def test_node_reads_signals_and_killed_identities_get_no_svids(env: Env) -> None:  # noqa: F811
    node = env.attest()
    entry = env.entry(node.spiffe_id)
    instance = node.register(entry["id"]).json()
    x509 = {"requests": [{"entry_id": entry["id"], "instance_id": instance["instance_id"],
                          "csr": csr_pem()}]}
    jwt = {"entry_id": entry["id"], "instance_id": instance["instance_id"],
           "audience": ["orders"]}
    assert node.http.post("/node/v1/svids/x509", json=x509).status_code == 200

    state = node.http.get("/api/v1/signals/state")  # the node's SVID, no token
    assert state.status_code == 200 and state.json() == {"last_event_id": 0, "entries": []}
    assert env.client().get("/api/v1/signals/state").status_code == 401

    target = quote(instance["spiffe_id"], safe="")
    assert env.admin.post(f"/api/v1/kill/instance/{target}/suspend",
                          json={"reason": "r"}).status_code == 200
    refused = node.http.post("/node/v1/svids/x509", json=x509)
    assert refused.status_code == 403 and refused.json()["code"] == "suspended"
    assert node.http.post("/node/v1/svids/jwt", json=jwt).status_code == 403
    assert node.http.get("/api/v1/signals/state").json()["last_event_id"] == 1
    env.admin.post(f"/api/v1/kill/instance/{target}/resume", json={})
    assert node.http.post("/node/v1/svids/jwt", json=jwt).status_code == 200

    node_target = quote(node.spiffe_id, safe="")
    env.admin.post(f"/api/v1/kill/node/{node_target}/suspend", json={})
    assert node.http.post("/node/v1/svids/x509", json=x509).status_code == 403
    assert node.http.post("/node/v1/sync", json={}).status_code == 200  # still follows
    env.admin.post(f"/api/v1/kill/node/{node_target}/resume", json={})
    assert node.http.post("/node/v1/svids/x509", json=x509).status_code == 200
