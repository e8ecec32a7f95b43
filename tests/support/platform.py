"""Run tabard as a user would: ``tabard dev`` in a subprocess, and the ``tabard`` CLI against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

__all__ = ["DevPlatform", "run_cli"]

READY_TIMEOUT = 60.0


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``tabard ARGS`` in a subprocess; returns the completed process (never raises on exit)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tabard", *args],
        env=full_env, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False,
    )


class DevPlatform:
    """``tabard dev`` on a temp data dir (SQLite, or PostgreSQL when ``database_url`` is set)."""

    def __init__(self, data_dir: Path, *, database_url: str | None = None,
                 extra_env: Mapping[str, str] | None = None,
                 trust_domain: str = "example.org") -> None:
        self.data_dir = data_dir
        self.ready_file = data_dir / "ready.json"
        self.database_url = database_url
        self.trust_domain_name = trust_domain
        self.env: dict[str, str] = {"TABARD_TRUST_DOMAIN": trust_domain}
        if database_url and not database_url.startswith("sqlite"):
            self.env["TABARD_DATABASE_URL"] = database_url
        self.env.update(extra_env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    def start(self) -> DevPlatform:
        self.ready_file.unlink(missing_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stdout = open(self.data_dir / "dev.stdout", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tabard", "dev", "--data-dir", str(self.data_dir),
             "--ready-file", str(self.ready_file), "--port", "0"],
            env={**os.environ, **self.env}, stdout=self.stdout, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tabard dev exited with {self.process.returncode}: "
                                   f"{self.output()[-2000:]}")
            if self.ready_file.exists():
                try:
                    self.ready = json.loads(self.ready_file.read_text())
                    return self
                except ValueError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"tabard dev not ready in {READY_TIMEOUT}s: {self.output()[-2000:]}")

    def output(self) -> str:
        path = self.data_dir / "dev.stdout"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        path = self.data_dir / "tabard.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if hasattr(self, "stdout"):
            self.stdout.close()

    def __enter__(self) -> DevPlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return str(self.ready["server_url"])

    @property
    def admin_token(self) -> str:
        return str(self.ready["admin_token"])

    @property
    def cli_env(self) -> dict[str, str]:
        return {**self.env, "TABARD_SERVER_URL": self.url, "TABARD_ADMIN_TOKEN": self.admin_token}

    def cli(self, *args: str, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env={**self.cli_env, **(env or {})})

    @property
    def workload_socket(self) -> str:
        """The Workload API address as workloads take it: ``unix:///abs/path``."""
        return str(self.ready["workload_socket"])

    @property
    def workload_socket_path(self) -> Path:
        return Path(self.workload_socket.removeprefix("unix://"))

    @property
    def node_spiffe_id(self) -> str:
        return str(self.ready["node_spiffe_id"])

    @property
    def trust_domain(self) -> str:
        return str(self.ready.get("trust_domain", self.trust_domain_name))

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {self.admin_token}"})
