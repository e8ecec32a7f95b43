"""``tabard server``: the REST API of the control plane (thin: routes call one service each)."""

from tabard.server.app import create_app
from tabard.server.deps import ServerServices

__all__ = ["ServerServices", "create_app"]
