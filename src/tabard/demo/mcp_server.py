"""The demo MCP server: ``python -m tabard.demo.mcp_server --port N``.

Built with the official MCP Python SDK (``MCPServer``, streamable HTTP). Every request must
carry ``Authorization: Bearer <token>``, the token read from the environment variable
``TABARD_DEMO_UPSTREAM_TOKEN`` (never from the command line, where ``ps`` shows it); the
gateway injects it from the vault secret ``demo-tools-token``, so an agent can reach these
tools only through the gateway. The check is a few lines of ASGI middleware: the SDK's own
auth expects a full OAuth resource-server setup, which a static bearer does not need.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mcp.server.mcpserver import MCPServer

__all__ = ["TOKEN_ENV", "build_app", "build_server", "main"]

TOKEN_ENV = "TABARD_DEMO_UPSTREAM_TOKEN"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def build_server() -> MCPServer:
    server: MCPServer = MCPServer("tabard-demo-tools", version="1")

    @server.tool(name="jira.create_issue", description="Create a Jira issue.")
    def create_issue(project: str, summary: str) -> str:
        return f"created {project.upper()}-{100 + len(summary) % 900}: {summary}"

    @server.tool(name="github.read_repo", description="Read a repository's README.")
    def read_repo(repo: str) -> str:
        return f"# {repo}\n\nThe {repo} service. Build with `make`, test with `make test`."

    @server.tool(name="scanner.run_scan", description="Run a vulnerability scan of a host.")
    def run_scan(target: str) -> str:
        return json.dumps({"target": target, "findings": [
            {"id": "CVE-2024-3094", "severity": "critical", "package": "xz-utils"}]})

    @server.tool(name="deploy.trigger", description="Deploy a service to an environment.")
    def trigger(service: str, environment: str = "production") -> str:
        return f"deployment of {service} to {environment} started"

    return server


def _require_bearer(app: ASGIApp, token: str) -> ASGIApp:
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(given, expected):
            await app(scope, receive, send)
            return
        body = json.dumps({"error": "unauthorized",
                           "error_description": "this server is reachable only through the "
                           "tabard gateway (route demo-tools)"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"www-authenticate", b'Bearer realm="demo-tools"'),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return guarded


def build_app(token: str) -> ASGIApp:
    """The server's ASGI app at ``/mcp``, refusing requests without ``token``."""
    if not token:
        raise ValueError("the demo server needs a token")
    app: ASGIApp = build_server().streamable_http_app(streamable_http_path="/mcp")
    return _require_bearer(app, token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tabard's demo MCP server (streamable HTTP "
                                     f"at /mcp; bearer token from ${TOKEN_ENV}).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"error: set {TOKEN_ENV}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(build_app(token), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
