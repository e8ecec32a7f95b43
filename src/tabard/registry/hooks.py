"""Memory-sanitisation hooks run at retirement: executables of the hooks directory and
webhooks.

A command hook names a file in the server's hooks directory (``<data_dir>/hooks``): the
admin API chooses among the executables an operator installed there, it never supplies a
command line. The file runs as ``<file> <agent name>`` in its own session, with a minimal
environment (``PATH``, ``TABARD_AGENT``, ``TABARD_HOOK``, ``TABARD_AGENT_SPIFFE_PREFIX`` —
never the server's own variables, which may hold secrets) and a JSON description of the
agent on standard input; exit status 0 is success. A webhook gets the same JSON as a POST;
any 2xx answer is success. Both are bounded by a timeout, after which the hook's whole
process group is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from tabard.registry.agent_errors import InvalidAgentError
from tabard.registry.agents import AgentDefinition, HookKind, HookOutcome, SanitizationHook
from tabard.spiffe import TrustDomain

__all__ = ["HOOK_EVENT", "LocalHookRunner"]

HOOK_EVENT = "agent.sanitize_memory"
_OUTPUT_TAIL = 400
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _tail(data: bytes) -> str:
    text = _CONTROL.sub(" ", data.decode(errors="replace")).strip()
    return text[-_OUTPUT_TAIL:]


class LocalHookRunner:
    """Runs command hooks from ``hooks_dir`` and webhooks over HTTP(S)."""

    def __init__(self, hooks_dir: Path, trust_domain: TrustDomain, *,
                 timeout: timedelta = timedelta(minutes=5)) -> None:
        self._dir = hooks_dir
        self._td = trust_domain
        self._timeout = timeout.total_seconds()

    @property
    def hooks_dir(self) -> Path:
        return self._dir

    def _path(self, hook: SanitizationHook) -> Path:
        return self._dir / hook.target

    def check(self, hook: SanitizationHook) -> None:
        if hook.kind is not HookKind.COMMAND:
            return
        path = self._path(hook)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise InvalidAgentError(f"command hook {hook.target!r} is not an executable file "
                                    f"of the hooks directory {self._dir}")

    def _payload(self, hook: SanitizationHook, agent: AgentDefinition) -> dict[str, Any]:
        return {
            "event": HOOK_EVENT,
            "agent": agent.name,
            "owner": agent.owner,
            "spiffe_id_prefix": f"spiffe://{self._td.name}/agent/{agent.name}/",
            "hook": hook.label,
        }

    def run(self, hook: SanitizationHook, agent: AgentDefinition) -> HookOutcome:
        payload = self._payload(hook, agent)
        if hook.kind is HookKind.WEBHOOK:
            return self._webhook(hook, payload)
        return self._command(hook, agent, payload)

    def _command(self, hook: SanitizationHook, agent: AgentDefinition,
                 payload: dict[str, Any]) -> HookOutcome:
        try:
            self.check(hook)
        except InvalidAgentError as exc:
            return HookOutcome(False, exc.message)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TABARD_AGENT": agent.name,
            "TABARD_HOOK": hook.target,
            "TABARD_AGENT_SPIFFE_PREFIX": payload["spiffe_id_prefix"],
        }
        try:
            process = subprocess.Popen(
                [str(self._path(hook)), agent.name], cwd=self._dir, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return HookOutcome(False, f"cannot start: {exc.strerror or exc.__class__.__name__}")
        try:
            out, err = process.communicate(json.dumps(payload).encode(), timeout=self._timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return HookOutcome(False, f"timed out after {self._timeout:g}s")
        detail = f"exit {process.returncode}"
        tail = _tail(err) or _tail(out)
        if tail:
            detail += f": {tail}"
        return HookOutcome(process.returncode == 0, detail)

    def _webhook(self, hook: SanitizationHook, payload: dict[str, Any]) -> HookOutcome:
        try:
            response = httpx.post(hook.target, json=payload, timeout=self._timeout,
                                  follow_redirects=False)
        except httpx.HTTPError as exc:
            return HookOutcome(False, f"request failed: {exc.__class__.__name__}")
        return HookOutcome(200 <= response.status_code < 300, f"HTTP {response.status_code}")
