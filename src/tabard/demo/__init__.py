"""The scene ``tabard dev --demo`` shows (issue 6 "The demo").

:mod:`.mcp_server` is the demo upstream: an MCP server built with the official MCP Python
SDK, offering ``jira.create_issue``, ``github.read_repo``, ``scanner.run_scan`` and
``deploy.trigger``, which answers only requests that carry the bearer token the gateway
injects from the vault (route ``demo-tools``). Seeding lives in ``tabard.cli.demo``.
"""
