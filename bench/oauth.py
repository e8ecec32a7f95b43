"""Token exchange against a running server, beside JWT-SVID minting in the same run.

``tabard dev`` runs in a subprocess (SQLite, loopback only). Both sides are one HTTP request
over one keep-alive connection to the same server, so the ratio isolates what an exchange
adds to a plain authenticated mint: verifying the user token, the actor's and the client's
JWT-SVIDs, the registry and directory look-ups, the scope computation, signing the access
token and writing its record.

* subject — ``POST /oauth/token``, RFC 8693 token exchange (user token from the demo issuer,
  the agent instance's JWT-SVID as client assertion and actor token, a scope and a resource);
* baseline — ``POST /api/v1/svids/jwt``, a JWT-SVID minted for an admin.

Rounds alternate (``bench.harness.compare_rates``) and every loop is bounded in time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
from tests.support.platform import DevPlatform

from bench.harness import Figure, compare_rates

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
AGENT = "spiffe://example.org/agent/bench/instance/1"


def _setup(dev: DevPlatform) -> None:
    for args in (("users", "create", "alice"),
                 ("agents", "register", "bench", "--owner", "alice", "--purpose", "bench",
                  "--tier", "dev", "--policy", "p", "--tool", "jira.create", "--selector",
                  "unix:uid:1", "--model-provider", "a", "--model-name", "b",
                  "--model-version", "1", "--hosting", "h", "--image-digest",
                  "sha256:" + "a" * 64, "--activate")):
        done = dev.cli(*args)
        if done.returncode != 0:
            raise RuntimeError(f"bench setup failed: {done.stderr}")


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp, DevPlatform(Path(tmp) / "dev") as dev:
        _setup(dev)
        with httpx.Client(base_url=dev.url, timeout=30,
                          headers={"Authorization": f"Bearer {dev.admin_token}"}) as admin, \
                httpx.Client(base_url=dev.url, timeout=30) as client:
            user = admin.post("/api/v1/oauth/user-tokens",
                              json={"user": "alice", "ttl": "1h"}).json()["token"]
            svid = admin.post("/api/v1/svids/jwt", json={
                "spiffe_id": AGENT, "audience": [dev.url], "ttl": "1h"}).json()["token"]
            form = {"grant_type": EXCHANGE, "subject_token": user,
                    "subject_token_type": JWT_TYPE, "actor_token": svid,
                    "actor_token_type": JWT_TYPE,
                    "client_assertion_type":
                        "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe",
                    "client_assertion": svid, "resource": "https://mcp.example.org/tools",
                    "scope": "tools:jira.*"}
            mint = {"spiffe_id": AGENT, "audience": ["https://mcp.example.org/tools"]}

            def exchange() -> None:
                response = client.post("/oauth/token", data=form)
                if response.status_code != 200:
                    raise RuntimeError(f"token exchange failed: {response.text}")

            def mint_svid() -> None:
                response = admin.post("/api/v1/svids/jwt", json=mint)
                if response.status_code != 200:
                    raise RuntimeError(f"JWT-SVID mint failed: {response.text}")

            exchanges, mints = compare_rates(exchange, mint_svid, rounds=5, seconds=0.5)
    return [Figure(
        name="token exchange over HTTP (RFC 8693, one hop)", value=exchanges, unit="ops/s",
        baseline_name="JWT-SVID mint over HTTP", baseline=mints, goal="reported",
        notes=["both sides: one keep-alive HTTP/1.1 connection to `tabard dev` on SQLite; "
               "an exchange verifies three JWTs, reads the registry and directory, signs "
               "one token and writes its record"],
    )]
