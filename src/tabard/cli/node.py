"""``tabard node``: the per-host daemon serving the SPIFFE Workload API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tabard.cli.output import console
from tabard.logs import configure_logging

if TYPE_CHECKING:
    from tabard.app import NodeReady

__all__ = ["node", "register"]


def node(
    server: Annotated[
        str,
        typer.Option("--server", envvar="TABARD_SERVER_URL", show_envvar=True,
                     help="The server's REST URL (its /.well-known/tabard names the node API)."),
    ],
    socket: Annotated[
        Path,
        typer.Option("--socket", help="Workload API Unix socket to create (absolute path)."),
    ],
    join_token: Annotated[
        str | None,
        typer.Option("--join-token", envvar="TABARD_JOIN_TOKEN",
                     help="One-time join token (tabard token generate); needed on first start "
                     "only: the node SVID is kept in the data dir."),
    ] = None,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the node keeps its SVID, key and bundle.")
    ] = Path(".tabard/node"),
    trust_bundle: Annotated[
        Path | None,
        typer.Option("--trust-bundle",
                     help="CA certificates (PEM or SPIFFE bundle JSON) for an https:// --server "
                     "instead of the system roots."),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")] = (
        "info"
    ),
) -> None:
    """Run the node agent: attest this host, then serve SVIDs to local workloads.

    Workloads find the socket through SPIFFE_ENDPOINT_SOCKET=unix:///abs/path.

    Example: tabard node --server http://127.0.0.1:8080 --join-token T --socket /run/tabard.sock
    """
    from tabard.app import NodeSettings, run_node  # the daemon's own heavy imports

    configure_logging(log_level)
    settings = NodeSettings(
        server_url=server,
        socket_path=socket.absolute(),
        data_dir=data_dir,
        join_token=join_token,
        trust_bundle=trust_bundle,
    )

    def ready(info: NodeReady) -> None:
        console.print(f"tabard node {info.node_spiffe_id} serving the Workload API", markup=False)
        console.print(f"  export SPIFFE_ENDPOINT_SOCKET={info.workload_socket}", markup=False)

    run_node(settings, ready)


def register(app: typer.Typer) -> None:
    app.command("node")(node)
