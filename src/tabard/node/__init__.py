"""``tabard node``: the per-host daemon serving the SPIFFE Workload API.

:class:`NodeService` / :func:`run_node` run it; :class:`NodeAgent` holds the node identity
and the SVID caches; :class:`WorkloadApiServer` serves the Workload API on a Unix socket,
identifying callers by their kernel peer credentials; :class:`NodeServerClient` is the port
to the server's node API (HTTPS implementation: :class:`HttpNodeServerClient`).
"""

from tabard.node.agent import AgentTimings, Backoff, Instance, NodeAgent, X509Credential, X509View
from tabard.node.daemon import NodeReady, NodeService, NodeSettings, run_node, serve_node
from tabard.node.errors import (
    JoinTokenRequiredError,
    NodeConfigError,
    NoIdentityError,
    ServerIdentityError,
    ServerRefusedError,
    ServerRejectedError,
    ServerResponseError,
    ServerUnavailableError,
)
from tabard.node.listener import PeerCredentialListener
from tabard.node.ports import (
    Entry,
    InstanceGrant,
    InstanceRequest,
    IssuedJwtSvid,
    IssuedX509Svid,
    JwtSvidRequest,
    NodeCredentials,
    NodeServerClient,
    SyncSnapshot,
    X509SvidRequest,
)
from tabard.node.serverclient import Discovery, HttpNodeServerClient, discover
from tabard.node.state import NodeStateStore
from tabard.node.workload import WorkloadApiServer

__all__ = [
    "AgentTimings",
    "Backoff",
    "Discovery",
    "Entry",
    "HttpNodeServerClient",
    "Instance",
    "InstanceGrant",
    "InstanceRequest",
    "IssuedJwtSvid",
    "IssuedX509Svid",
    "JoinTokenRequiredError",
    "JwtSvidRequest",
    "NoIdentityError",
    "NodeAgent",
    "NodeConfigError",
    "NodeCredentials",
    "NodeReady",
    "NodeServerClient",
    "NodeService",
    "NodeSettings",
    "NodeStateStore",
    "PeerCredentialListener",
    "ServerIdentityError",
    "ServerRefusedError",
    "ServerRejectedError",
    "ServerResponseError",
    "ServerUnavailableError",
    "SyncSnapshot",
    "WorkloadApiServer",
    "X509Credential",
    "X509SvidRequest",
    "X509View",
    "discover",
    "run_node",
    "serve_node",
]
