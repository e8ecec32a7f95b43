"""The demo MCP server (official MCP SDK on both sides, streamable HTTP): it refuses a
client without the bearer the gateway injects, and serves the four demo tools with it."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tabard.demo.mcp_server import TOKEN_ENV
from tests.support.processes import free_port, wait_until

TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tabard.demo.mcp_server", "--port", str(port)],
        env={**os.environ, TOKEN_ENV: TOKEN}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/mcp"

    def up() -> bool | None:
        try:
            return httpx.get(url, timeout=1.0).status_code == 401 or None
        except httpx.HTTPError:
            return None

    try:
        wait_until(up, timeout=30)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _session(url: str, headers: dict[str, str]) -> tuple[list[str], str]:
    async with (httpx2.AsyncClient(headers=headers, timeout=10) as http,
                streamable_http_client(url, http_client=http) as (read, write),
                ClientSession(read, write) as session):
        await session.initialize()
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        result = await session.call_tool("jira.create_issue",
                                         {"project": "eng", "summary": "gateway demo"})
        assert not result.is_error
        text = result.content[0].text  # type: ignore[union-attr]
        return tools, text


def test_the_sdk_client_with_the_injected_bearer_calls_tools(server_url: str) -> None:
    tools, text = asyncio.run(_session(server_url, {"Authorization": f"Bearer {TOKEN}"}))
    assert tools == ["deploy.trigger", "github.read_repo", "jira.create_issue",
                     "scanner.run_scan"]
    assert text.startswith("created ENG-")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": TOKEN}])
def test_calls_without_the_credential_are_refused(server_url: str,
                                                  headers: dict[str, str]) -> None:
    with pytest.raises(BaseException):  # the SDK surfaces the 401 as an exception (group)
        asyncio.run(asyncio.wait_for(_session(server_url, headers), 20))
    refused = httpx.post(server_url, headers=headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "deploy.trigger", "arguments": {"service": "api"}}})
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
