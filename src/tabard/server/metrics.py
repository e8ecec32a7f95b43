"""Prometheus metrics of the server, on a registry of its own (one per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ServerMetrics"]


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tabard_http_requests", "HTTP requests served", ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tabard_http_request_seconds", "HTTP request latency", ["route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.svids_minted = Counter(
            "tabard_svids_minted", "SVIDs minted through the admin API", ["kind"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "tabard_admin_auth_failures", "Admin API calls refused for bad credentials",
            registry=self.registry,
        )
