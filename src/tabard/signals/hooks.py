"""Suspension hooks: per-agent executables run when the kill switch suspends an agent, for
rollback or clean-up of in-flight multi-step work.

The same shape as the registry's retirement hooks (``tabard.registry.hooks``): the admin API
never supplies a command line; an operator installs an executable as
``<hooks dir>/suspend/<agent name>`` (or ``<hooks dir>/suspend/default`` for every agent
without its own). It runs as ``<file> <agent name>`` in its own session, with a minimal
environment (``PATH``, ``TABARD_AGENT``, ``TABARD_EVENT``) and a JSON description of the
suspension on standard input; exit status 0 is success. A timeout kills its whole process
group. The kill switch records the result in the audit log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["SUSPEND_EVENT", "SuspendHookRunner"]

SUSPEND_EVENT = "agent.suspended"
_TAIL = 400
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _tail(data: bytes) -> str:
    return _CONTROL.sub(" ", data.decode(errors="replace")).strip()[-_TAIL:]


class SuspendHookRunner:
    def __init__(self, hooks_dir: Path, *, timeout: float = 300.0) -> None:
        self._dir = hooks_dir / "suspend"
        self._timeout = timeout

    def hook_for(self, agent: str) -> Path | None:
        for name in (agent, "default"):
            path = self._dir / name
            if path.is_file() and os.access(path, os.X_OK):
                return path
        return None

    def run(self, agent: str, payload: Mapping[str, Any]) -> tuple[bool, str] | None:
        path = self.hook_for(agent)
        if path is None:
            return None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TABARD_AGENT": agent,
               "TABARD_EVENT": SUSPEND_EVENT}
        try:
            process = subprocess.Popen(
                [str(path), agent], cwd=self._dir, env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            return False, f"cannot start {path.name}: {exc.strerror or type(exc).__name__}"
        body = json.dumps({"event": SUSPEND_EVENT, "agent": agent, **payload}).encode()
        try:
            out, err = process.communicate(body, timeout=self._timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return False, f"{path.name}: timed out after {self._timeout:g}s"
        detail = f"{path.name}: exit {process.returncode}"
        tail = _tail(err) or _tail(out)
        if tail:
            detail += f": {tail}"
        return process.returncode == 0, detail
