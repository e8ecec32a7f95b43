"""tabard's daemons and test workloads as separate processes, the way an operator runs them.

``ServerProcess`` runs ``tabard server`` and ``NodeProcess`` runs ``tabard node``, so a test can
stop and restart one without the other. ``AgentPython`` gives each test agent an executable of
its own (a copy of a system Python), so a registration entry can name it with ``unix:path``
and a process of another uid can execute it; ``run_workload`` runs one of the scripts in
``tests/support/workloads`` under it and reads the one JSON line the script prints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

__all__ = [
    "WORKLOADS_DIR",
    "AgentPython",
    "NodeProcess",
    "ServerProcess",
    "WorkloadResult",
    "free_port",
    "run_workload",
    "start_workload",
    "wait_until",
]

WORKLOADS_DIR = Path(__file__).resolve().parent / "workloads"
"""The workload scripts (stdlib + py-spiffe + cryptography only, no tabard or tests imports)."""

SITE_PACKAGES = Path(grpc.__file__).resolve().parents[1]
"""The virtualenv's site-packages: py-spiffe, gRPC and cryptography for the workloads."""

STARTUP_TIMEOUT = 60.0
T = TypeVar("T")


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (fixed ports survive a restart)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(probe: Callable[[], T | None], *, timeout: float, interval: float = 0.25,
               message: str = "condition") -> T:
    """Call ``probe`` until it returns something other than None or False; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message}: not reached within {timeout:g}s")
        time.sleep(interval)


def _terminate(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _daemon_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    # unbuffered: the readiness lines must reach the log file while the daemon runs
    return {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}


class _Daemon:
    """A ``python -m tabard ...`` process whose stdout and stderr go to one log file."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def _spawn(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tabard", *args], env=dict(env),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def output(self) -> str:
        """Everything this daemon printed since its latest start."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self._offset)
            return log.read().decode(errors="replace")

    def _wait_for(self, pattern: re.Pattern[str], what: str,
                  timeout: float = STARTUP_TIMEOUT) -> re.Match[str]:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.output())
            if found:
                return found
            if self.process.poll() is not None:
                raise RuntimeError(f"{what} exited with {self.process.returncode}: "
                                   f"{self.output()[-3000:]}")
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{what} not ready in {timeout:g}s: {self.output()[-3000:]}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process)
        self.process = None


class ServerProcess(_Daemon):
    """``tabard server`` on a data dir (SQLite) with fixed ports, so a restart keeps its URLs."""

    _LISTENING = re.compile(r"tabard server listening on (\S+) .*node API on (\S+)")
    _TOKEN = re.compile(r"export TABARD_ADMIN_TOKEN=(\S+)")

    def __init__(self, data_dir: Path, *, trust_domain: str = "example.org",
                 extra_env: Mapping[str, str] | None = None) -> None:
        super().__init__(data_dir / "server.log")
        self.data_dir = data_dir
        self.trust_domain = trust_domain
        self.env = {"TABARD_TRUST_DOMAIN": trust_domain, **(extra_env or {})}
        self.port = free_port()
        self.node_api_port = free_port()
        self.url = ""
        self.node_api_url = ""
        self.admin_token = ""

    def start(self) -> ServerProcess:
        self._spawn(["server", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
                     "--port", str(self.port), "--node-api-port", str(self.node_api_port)],
                    _daemon_env(self.env))
        found = self._wait_for(self._LISTENING, "tabard server")
        self.url, self.node_api_url = found.group(1), found.group(2)
        token = self._TOKEN.search(self.output())
        if token is not None:  # printed on the first start only
            self.admin_token = token.group(1)
        if not self.admin_token:
            raise RuntimeError("tabard server printed no admin token on its first start")
        return self

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    @property
    def cli_env(self) -> dict[str, str]:
        return {**self.env, "TABARD_SERVER_URL": self.url,
                "TABARD_ADMIN_TOKEN": self.admin_token}

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tabard", *args],
                              env={**os.environ, **self.cli_env}, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NodeProcess(_Daemon):
    """``tabard node`` serving the Workload API on ``socket_path``."""

    _READY = re.compile(r"tabard node (spiffe://\S+) serving the Workload API")

    def __init__(self, server_url: str, socket_path: Path, data_dir: Path, *,
                 join_token: str | None = None,
                 extra_env: Mapping[str, str] | None = None) -> None:
        super().__init__(data_dir.parent / f"{data_dir.name}.log")
        self.server_url = server_url
        self.socket_path = socket_path
        self.data_dir = data_dir
        self.join_token = join_token
        self.env = dict(extra_env or {})
        self.node_spiffe_id = ""

    def _args(self) -> list[str]:
        args = ["node", "--server", self.server_url, "--socket", str(self.socket_path),
                "--data-dir", str(self.data_dir)]
        return [*args, "--join-token", self.join_token] if self.join_token else args

    def start(self, timeout: float = STARTUP_TIMEOUT) -> NodeProcess:
        self._spawn(self._args(), _daemon_env(self.env))
        self.node_spiffe_id = self._wait_for(self._READY, "tabard node", timeout).group(1)
        return self

    def run_to_exit(self, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the node expecting it to give up (refused attestation): stdout, stderr, code."""
        return subprocess.run([sys.executable, "-m", "tabard", *self._args()],
                              env=_daemon_env(self.env), capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)

    @property
    def workload_socket(self) -> str:
        return f"unix://{self.socket_path}"

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class AgentPython:
    """A Python interpreter copied to ``path``: one agent's own executable (``unix:path``).

    It runs with ``-S`` and the virtualenv's site-packages on PYTHONPATH, so it needs nothing
    under the test runner's home directory and another uid can execute it.
    """

    path: Path

    @classmethod
    def create(cls, directory: Path, name: str) -> AgentPython:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o755)
        target = directory / name
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        candidates = [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}",
                      os.path.realpath(sys.executable)]
        for candidate in candidates:
            if not os.path.isfile(candidate):
                continue
            shutil.copy2(candidate, target)
            os.chmod(target, 0o755)
            agent = cls(target)
            probe = subprocess.run([*agent.command(), "-c", "import spiffe, cryptography"],
                                   env=agent.env(), capture_output=True, timeout=60,
                                   check=False)
            if probe.returncode == 0:
                return agent
        raise RuntimeError(f"no Python {version} here runs py-spiffe from {SITE_PACKAGES} "
                           "when copied; tried " + ", ".join(candidates))

    def command(self) -> list[str]:
        return [str(self.path), "-S"]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"PYTHONPATH": str(SITE_PACKAGES), "PATH": "/usr/bin:/bin",
                "PYTHONDONTWRITEBYTECODE": "1", **(extra or {})}

    def selectors(self, uid: int = 0) -> list[str]:
        return [f"unix:uid:{uid}", f"unix:path:{self.path}"]


@dataclass(frozen=True)
class WorkloadResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> dict[str, Any]:
        """The last JSON line the script printed."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"workload printed nothing (exit {self.returncode}); "
                                 f"stderr: {self.stderr[-2000:]}")
        value: dict[str, Any] = json.loads(lines[-1])
        return value

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _workload_command(python: AgentPython, script: str, args: Sequence[str]) -> list[str]:
    return [*python.command(), str(WORKLOADS_DIR / script), *args]


def run_workload(python: AgentPython, script: str, *args: str, socket_uri: str,
                 timeout: float = 60.0, uid: int | None = None,
                 env: Mapping[str, str] | None = None) -> WorkloadResult:
    """Run ``workloads/<script>`` to completion with SPIFFE_ENDPOINT_SOCKET set.

    With ``uid``, the child becomes that user (and its group, no supplementary groups) before
    it executes anything.
    """
    as_user: dict[str, Any] = {} if uid is None else {"user": uid, "group": uid,
                                                      "extra_groups": []}
    done = subprocess.run(
        _workload_command(python, script, args),
        env=python.env({"SPIFFE_ENDPOINT_SOCKET": socket_uri, **(env or {})}),
        capture_output=True, text=True, timeout=timeout, check=False, cwd="/", **as_user,
    )
    return WorkloadResult(done.returncode, done.stdout, done.stderr)


def start_workload(python: AgentPython, script: str, *args: str,
                   socket_uri: str) -> subprocess.Popen[str]:
    """Start a long-running workload; its stdout is a pipe of JSON lines."""
    return subprocess.Popen(
        _workload_command(python, script, args),
        env=python.env({"SPIFFE_ENDPOINT_SOCKET": socket_uri}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
    )
