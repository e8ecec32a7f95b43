"""Errors of the node daemon, one class per reason; ``code`` is stable.

The Workload API maps the categories to gRPC codes in one table
(:data:`tabard.node.workload.GRPC_STATUS`).
"""

from __future__ import annotations

from tabard.errors import Denied, Invalid, Unauthenticated, Unavailable

__all__ = [
    "JoinTokenRequiredError",
    "NoIdentityError",
    "NodeConfigError",
    "ServerIdentityError",
    "ServerRefusedError",
    "ServerRejectedError",
    "ServerResponseError",
    "ServerUnavailableError",
    "SuspendedError",
]


class ServerUnavailableError(Unavailable):
    """The server could not be reached or answered 5xx; the node retries with backoff."""

    code = "server_unavailable"


class ServerResponseError(Unavailable):
    """The server answered something the node API does not allow (missing field, bad PEM)."""

    code = "bad_server_response"


class ServerIdentityError(Unauthenticated):
    """The node API's certificate is not the X509-SVID ``spiffe://<td>/tabard/server``."""

    code = "server_identity_mismatch"


class ServerRefusedError(Denied):
    """401/403 from the server; ``code`` is the problem's code (e.g. ``not_your_entry``)."""

    code = "server_refused"


class ServerRejectedError(Invalid):
    """4xx other than 401/403: the request itself was wrong."""

    code = "server_rejected"


class NoIdentityError(Denied):
    """The caller matches no registration entry (or not the SPIFFE ID it asked for)."""

    code = "no_identity"


class SuspendedError(Denied):
    """The kill switch suspended the caller's agent, instance or this node: no SVIDs."""

    code = "suspended"


class JoinTokenRequiredError(Invalid):
    """The node has no usable node SVID in its data dir and was given no join token."""

    code = "join_token_required"


class NodeConfigError(Invalid):
    """A node setting that cannot work (socket path too long, bad server URL, ...)."""

    code = "invalid_node_config"
