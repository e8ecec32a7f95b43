"""The REST API as a client sees it: health, authentication, problem details, bad input."""

from __future__ import annotations

import httpx

from tests.support.platform import DevPlatform

PROBLEM = "application/problem+json"


def test_health_ready_metrics_openapi(platform: DevPlatform) -> None:
    with httpx.Client(base_url=platform.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz").json()
        assert ready == {"status": "ready", "trust_domain": "example.org"}
        http.get("/bundle")
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "tabard_http_requests_total" in metrics.text
        paths = http.get("/openapi.json").json()["paths"]
        assert {"/bundle", "/api/v1/svids/x509", "/api/v1/svids/jwt",
                "/api/v1/authorities"} <= set(paths)


def test_every_admin_endpoint_requires_a_valid_token(platform: DevPlatform) -> None:
    paths = httpx.get(f"{platform.url}/openapi.json").json()["paths"]
    api = [(p, m) for p, ops in paths.items() if p.startswith("/api/v1") for m in ops]
    assert len(api) >= 6
    for token in (None, "tabard_admin_wrong", platform.admin_token[:-2] + "xx", "Basic abc"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for path, method in api:
            response = httpx.request(method.upper(), platform.url + path.replace(
                "{record_id}", "x").replace("{token_id}", "x"), headers=headers, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == PROBLEM
            assert response.headers["www-authenticate"].startswith("Bearer")
            body = response.json()
            assert body["status"] == 401 and body["type"].endswith("/unauthenticated")


def test_problem_details_for_bad_input(platform: DevPlatform) -> None:
    with platform.http() as http:
        bad_id = http.post("/api/v1/svids/jwt", json={"spiffe_id": "spiffe://Example.org/x",
                                                      "audience": ["a"]})
        assert bad_id.status_code == 400
        assert bad_id.headers["content-type"] == PROBLEM
        assert "lowercase" in bad_id.json()["detail"]

        missing = http.post("/api/v1/svids/jwt", json={"spiffe_id": "spiffe://example.org/x"})
        assert missing.status_code == 400 and missing.json()["detail"].startswith("audience")

        not_json = http.post("/api/v1/svids/jwt", content=b"{nope",
                             headers={"content-type": "application/json"})
        assert not_json.status_code == 400 and not_json.headers["content-type"] == PROBLEM

        bad_ttl = http.post("/api/v1/svids/jwt", json={"spiffe_id": "spiffe://example.org/x",
                                                       "audience": ["a"], "ttl": "forever"})
        assert bad_ttl.status_code == 400 and "duration" in bad_ttl.json()["detail"]

        bad_csr = http.post("/api/v1/svids/x509", json={"spiffe_id": "spiffe://example.org/x",
                                                        "csr": "not a csr"})
        assert bad_csr.status_code == 400 and "csr" in bad_csr.json()["detail"]

        foreign = http.post("/api/v1/svids/jwt", json={"spiffe_id": "spiffe://other.org/x",
                                                       "audience": ["a"]})
        assert foreign.status_code == 400, foreign.text

        huge = http.post("/api/v1/svids/jwt", content=b"x" * (2 << 20),
                         headers={"content-type": "application/json"})
        assert huge.status_code == 413 and huge.headers["content-type"] == PROBLEM

        unknown = http.get("/api/v1/nothing-here")
        assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM

        retire_active = http.get("/api/v1/authorities").json()
        active = next(r for r in retire_active if r["state"] == "active")
        conflict = http.post(f"/api/v1/authorities/{active['id']}/retire")
        assert conflict.status_code == 409 and conflict.headers["content-type"] == PROBLEM

        # the server keeps serving after all of it
        assert http.get("/readyz").status_code == 200


def test_admin_tokens_are_shown_once_and_revocable(platform: DevPlatform) -> None:
    with platform.http() as http:
        created = http.post("/api/v1/admin-tokens", json={"name": "ci"})
        assert created.status_code == 201
        token = created.json()["token"]
        listing = http.get("/api/v1/admin-tokens").text
        assert token not in listing and "digest" not in listing
        other = httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {token}"})
        assert other.get("/api/v1/authorities").status_code == 200
        assert http.delete(f"/api/v1/admin-tokens/{created.json()['id']}").status_code == 204
        assert other.get("/api/v1/authorities").status_code == 401
