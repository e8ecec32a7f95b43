"""An agent of the tabard demo calling a tool through the gateway (``tabard dev --demo``).

    python examples/demo_agent.py --ready-file .tabard/demo/ready.json --user alice \\
        --tool jira.create_issue --arguments '{"project": "eng", "summary": "hello"}'

What it does, as an agent would:

1. Its identity comes from the Workload API (py-spiffe, ``SPIFFE_ENDPOINT_SOCKET`` or the
   ready file's ``workload_socket``): run it as the user whose uid the demo entry selects,
   so it is an instance of the agent ``assistant``. It fetches two JWT-SVIDs: one for the
   authorization server (client assertion and actor token), one with ``aud`` = the
   gateway URL for the ``Tabard-Agent-Token`` header.
2. The user's token comes from the demo issuer (``tabard users token --user alice``); a
   token exchange (RFC 8693) at tabard's authorization server turns it into a delegated
   access token for the route, whose ``act`` names this instance.
3. The official MCP Python SDK client talks streamable HTTP to
   ``<gateway_url>/mcp/demo-tools`` with both headers. It never holds the upstream's
   credential: the gateway injects it. ``tools/list`` shows only what this user may call
   through this agent; a denied call is a JSON-RPC error; ``deploy.trigger`` for alice waits
   until ``tabard approvals approve <id> --approver bob``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from spiffe import WorkloadApiClient
from spiffe.errors import PySpiffeError as SpiffeError

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
SPIFFE_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"


def user_token(ready: dict[str, Any], user: str) -> str:
    """The user's own token from the demo issuer, via the ``tabard`` CLI."""
    env = {**os.environ, "TABARD_SERVER_URL": ready["server_url"],
           "TABARD_ADMIN_TOKEN": ready["admin_token"]}
    done = subprocess.run([sys.executable, "-m", "tabard", "users", "token", "--user", user],
                          env=env, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"tabard users token failed: {done.stderr.strip()}")
    return done.stdout.strip()


def delegated_token(ready: dict[str, Any], subject: str, agent_svid: str,
                    resource: str) -> str:
    """Token exchange: the user's token as subject, this instance as actor and client."""
    metadata = httpx.get(f"{ready['server_url']}/.well-known/oauth-authorization-server",
                         timeout=10).json()
    response = httpx.post(metadata["token_endpoint"], timeout=10, data={
        "grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": JWT_TYPE,
        "actor_token": agent_svid, "actor_token_type": JWT_TYPE,
        "client_assertion_type": SPIFFE_ASSERTION, "client_assertion": agent_svid,
        "resource": resource})
    if response.status_code != 200:
        raise SystemExit(f"token exchange refused: {response.text}")
    return str(response.json()["access_token"])


async def call(url: str, headers: dict[str, str], tool: str | None,
               arguments: dict[str, Any]) -> None:
    async with (httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)
                                   ) as http,
                streamable_http_client(url, http_client=http) as (read, write),
                ClientSession(read, write) as session):
        await session.initialize()
        tools = [t.name for t in (await session.list_tools()).tools]
        print(f"tools this user may call through this agent: {', '.join(tools) or '-'}")
        if tool is None:
            return
        try:
            result = await session.call_tool(tool, arguments)
        except Exception as exc:  # a JSON-RPC error (denied) reaches the SDK as an exception
            print(f"{tool}: refused: {exc}")
            return
        for part in result.content:
            print(f"{tool}: {getattr(part, 'text', part)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ready-file", type=Path, default=Path(".tabard/demo/ready.json"))
    parser.add_argument("--user", default="alice")
    parser.add_argument("--tool", help="Tool to call (default: only list the tools).")
    parser.add_argument("--arguments", default="{}", help="Tool arguments as JSON.")
    args = parser.parse_args()
    ready = json.loads(args.ready_file.read_text())
    gateway = ready.get("gateway_url")
    if not gateway:
        raise SystemExit("the ready file has no gateway_url: is the gateway running?")
    route_url = f"{gateway.rstrip('/')}/mcp/{ready.get('demo_route', 'demo-tools')}"
    socket = os.environ.get("SPIFFE_ENDPOINT_SOCKET") or ready["workload_socket"]
    try:
        with WorkloadApiClient(socket_path=socket) as workload:
            for_as = workload.fetch_jwt_svid(audience={ready["server_url"]}).token
            for_gateway = workload.fetch_jwt_svid(audience={gateway}).token
    except SpiffeError as exc:  # e.g. the agent is suspended: the node serves no SVID
        raise SystemExit(f"no identity from the Workload API: {exc}") from None
    access = delegated_token(ready, user_token(ready, args.user), for_as, route_url)
    headers = {"Tabard-Agent-Token": for_gateway, "Authorization": f"Bearer {access}"}
    arguments = json.loads(args.arguments)
    if args.tool and not arguments:
        arguments = {"jira.create_issue": {"project": "eng", "summary": "from the demo"},
                     "github.read_repo": {"repo": "tabard"},
                     "scanner.run_scan": {"target": "10.0.0.7"},
                     "deploy.trigger": {"service": "api"}}.get(args.tool, {})
    asyncio.run(call(route_url, headers, args.tool, arguments))


if __name__ == "__main__":
    main()
