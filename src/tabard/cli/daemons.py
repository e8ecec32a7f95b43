"""``tabard server`` and ``tabard dev``: the long-running processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tabard.cli.options import ConfigOpt, DataDirOpt
from tabard.cli.output import console
from tabard.config import Settings, load_settings
from tabard.logs import configure_logging

if TYPE_CHECKING:
    from tabard.app import Endpoints


def _settings(config: Path | None, data_dir: Path | None, **server: object) -> Settings:
    settings = load_settings(config)
    if data_dir is not None:
        settings = settings.with_overrides(data_dir=data_dir)
    overrides = {k: v for k, v in server.items() if v is not None}
    if overrides:
        settings = settings.with_overrides(
            server=settings.server.model_copy(update=overrides).model_dump()
        )
    return settings


def server(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (0 = any free).")] = None,
    node_api_port: Annotated[int | None, typer.Option(
        help="Port of the node API (mTLS) listener (0 = any free).")] = None,
) -> None:
    """Run the control plane (REST API, authority, bundle endpoint).

    On first start it creates an admin token and prints it once; only its hash is stored.

    Example: tabard server --data-dir /var/lib/tabard --port 8080
    """
    from tabard.app import build_control_plane, serve  # the daemon's own heavy imports

    settings = _settings(config, data_dir, host=host, port=port, node_api_port=node_api_port)
    configure_logging(settings.log_level, settings.log_file)
    plane = build_control_plane(settings)
    issued = plane.bootstrap_admin_token()

    def ready(endpoints: Endpoints) -> None:
        url = endpoints.server_url
        console.print(f"tabard server listening on {url} (trust domain {settings.trust_domain}); "
                      f"node API on {endpoints.node_api_url}")
        if issued is not None:
            console.print("Admin token (shown once; store it, tabard keeps only its hash):")
            console.print(f"  export TABARD_ADMIN_TOKEN={issued.token}", markup=False)

    try:
        serve(plane, on_ready=ready)
    finally:
        plane.close()


def dev(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    ready_file: Annotated[
        Path | None, typer.Option(help="Write JSON with server_url, trust_domain, admin_token, "
                                  "workload_socket, ... here once serving (default "
                                  "<data-dir>/ready.json).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Server port (0 = any free).")] = None,
    trust_domain: Annotated[str | None, typer.Option(help="Trust domain name.")] = None,
    demo: Annotated[bool, typer.Option(
        "--demo", help="Seed the demo scene (trust domain demo.example unless given): "
        "alice, bob, carol, the agent assistant, the demo MCP server and route demo-tools."
    )] = False,
) -> None:
    """Start the whole platform in one process on SQLite: server and node.

    The node is attested with a join token it gets directly, and serves the Workload API on
    <data-dir>/workload.sock. A fresh admin token is created at every start and written to
    the ready file (mode 0600).

    Example: tabard dev --data-dir ./.tabard --ready-file ./.tabard/ready.json
    (or: tabard dev --demo --data-dir ./.tabard/demo)
    """
    import threading

    from tabard.app import (
        ControlPlane,
        NodeAgent,
        NodeSettings,
        build_control_plane,
        serve,
        write_ready_file,
    )

    settings = _settings(config, data_dir, port=port,
                         node_api_port=0 if port == 0 else None)
    if port == 0:
        settings = settings.with_overrides(
            gateway=settings.gateway.model_copy(update={"port": 0}).model_dump())
    if trust_domain is not None:
        settings = settings.with_overrides(trust_domain=trust_domain)
    elif demo:
        from tabard.cli.demo import DEMO_TRUST_DOMAIN

        settings = settings.with_overrides(trust_domain=DEMO_TRUST_DOMAIN)
    # the demo user issuer (`tabard users token`) exists only here
    settings = settings.with_overrides(
        oauth=settings.oauth.model_copy(update={"demo_issuer": True}).model_dump())
    configure_logging(settings.log_level, settings.log_file or settings.data_dir / "tabard.log")
    plane: ControlPlane = build_control_plane(settings)
    issued = plane.admin_tokens.create("dev")
    target = ready_file or settings.data_dir / "ready.json"
    node_dir = settings.data_dir / "node"
    socket_path = (settings.data_dir / "workload.sock").resolve()
    agents: list[NodeAgent] = []
    scene = None
    if demo:
        from tabard.cli.demo import start_demo

        scene = start_demo(plane)
    gateway_url = threading.Event()
    urls: dict[str, str] = {}

    def gateway_ready(url: str) -> None:
        urls["gateway"] = url
        gateway_url.set()

    def start_node(endpoints: Endpoints) -> None:
        # The node calls the server, whose event loop is the caller of on_ready: start it on
        # a thread of its own so the server can answer the node's attestation.
        token = plane.registry.join_tokens.generate().token
        agent = NodeAgent(NodeSettings(server_url=endpoints.server_url,
                                       socket_path=socket_path, data_dir=node_dir,
                                       join_token=token))
        agents.append(agent)
        try:
            node = agent.start(timeout=60)
        except Exception as exc:
            console.print(f"error: the node did not start: {exc}", markup=False)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        url = endpoints.server_url
        gateway_url.wait(30)
        write_ready_file(target, {
            "gateway_url": urls.get("gateway"),
            "server_url": url,
            "node_api_url": endpoints.node_api_url,
            "trust_domain": settings.trust_domain,
            "admin_token": issued.token,
            "bundle_url": f"{url}/bundle",
            "workload_socket": node.workload_socket,
            "node_spiffe_id": str(node.node_spiffe_id),
            "data_dir": str(settings.data_dir.resolve()),
        })
        td = settings.trust_domain
        console.print(f"tabard dev: server on {url}, trust domain {td}")
        console.print(f"gateway on {urls.get('gateway')}", markup=False)
        console.print(f"node {node.node_spiffe_id}: Workload API on {node.workload_socket}",
                      markup=False)
        console.print(f"ready file: {target} (holds the admin token)")
        console.print("try:", style="bold")
        for line in (
            f"export TABARD_SERVER_URL={url}",
            "export TABARD_ADMIN_TOKEN=$(python3 -c \"import json;print(json.load("
            f"open('{target}'))['admin_token'])\")",
            f"export SPIFFE_ENDPOINT_SOCKET={node.workload_socket}",
            f"tabard entry create --spiffe-id 'spiffe://{td}/agent/demo/instance/{{instance}}' "
            f"--parent-id {node.node_spiffe_id} --selector unix:uid:{os.getuid()}",
            "tabard instances list",
            f"tabard x509 mint --spiffe-id spiffe://{td}/demo --out-dir ./svid",
        ):
            console.print(f"  {line}", markup=False)
        if scene is not None:
            demo_ready = scene.on_node_ready(str(node.node_spiffe_id), target)
            console.print("the demo:", style="bold")
            for line in scene.try_lines(demo_ready, target):
                console.print(f"  {line}", markup=False)

    def ready(endpoints: Endpoints) -> None:
        threading.Thread(target=start_node, args=(endpoints,), name="dev-node",
                         daemon=True).start()

    try:
        serve(plane, on_ready=ready, gateway_ready=gateway_ready)
    finally:
        for agent in agents:
            agent.stop()
        if scene is not None:
            scene.stop()
        plane.close()


def gateway(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (0 = any free).")] = None,
) -> None:
    """Run the identity gateway for MCP, A2A and HTTP routes over the server's database.

    Route N is served at <url>/mcp/N, /a2a/N or /http/N/... by its protocol. Agents
    authenticate with an X509-SVID (mTLS) or a JWT-SVID in Tabard-Agent-Token whose audience
    is the gateway's public URL; users with a delegated access token in Authorization.

    Example: tabard gateway --config tabard.toml --port 8443
    """
    from tabard.app import build_control_plane, serve_gateway_process

    settings = _settings(config, data_dir)
    if port is not None:
        settings = settings.with_overrides(
            gateway=settings.gateway.model_copy(update={"port": port}).model_dump())
    configure_logging(settings.log_level, settings.log_file)
    plane = build_control_plane(settings)

    def ready(url: str) -> None:
        console.print(f"tabard gateway listening on {url} (trust domain "
                      f"{settings.trust_domain}); routes at {url}/mcp/<name>, "
                      f"{url}/a2a/<name>, {url}/http/<name>/...", markup=False)

    try:
        serve_gateway_process(plane, on_ready=ready)
    finally:
        plane.close()


def register(app: typer.Typer) -> None:
    app.command("server")(server)
    app.command("dev")(dev)
    app.command("gateway")(gateway)
