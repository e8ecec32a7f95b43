"""Run the Node.js verifiers in ``tests/interop`` and read their one-line JSON verdict.

Interop tests check tabard's tokens with independent implementations (npm ``jose``,
``oauth4webapi``) so that a bug shared by tabard's signer and verifier cannot hide.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = [
    "INTEROP_DIR",
    "NodeInteropUnavailable",
    "NodeScriptError",
    "require_node_modules",
    "run_node_script",
]

INTEROP_DIR = Path(__file__).resolve().parent.parent / "interop"
"""Folder with ``package.json``, the lock file and the ``.mjs`` scripts."""

_SETUP_HINT = "run `bash scripts/test-setup.sh` (or `npm ci` in tests/interop)"
_REQUIRED_PACKAGES = ("jose", "oauth4webapi")


class NodeInteropUnavailable(RuntimeError):
    """Node.js or the pinned npm packages are missing; the message says how to install them."""


class NodeScriptError(RuntimeError):
    """A script did not produce the one JSON line it promises (crash, timeout, bad output)."""


def require_node_modules(directory: Path = INTEROP_DIR) -> str:
    """Return the ``node`` executable, or raise if node or the npm packages are missing."""
    node = shutil.which("node")
    if node is None:
        raise NodeInteropUnavailable(
            f"`node` is not on PATH; install Node.js 20+, then {_SETUP_HINT}"
        )
    modules = directory / "node_modules"
    missing = [
        name for name in _REQUIRED_PACKAGES if not (modules / name / "package.json").is_file()
    ]
    if missing:
        raise NodeInteropUnavailable(
            f"npm packages {', '.join(missing)} are not installed in {modules}; {_SETUP_HINT}"
        )
    return node


def run_node_script(script: str, *args: str, timeout: float = 30.0) -> dict[str, Any]:
    """Run ``node <script> <args>`` in ``tests/interop`` and return its JSON verdict.

    ``script`` is a file name in ``tests/interop`` (or an absolute path).

    The scripts exit 0 with ``{"ok": true, ...}`` or 1 with ``{"ok": false, ...}``; any other
    outcome is a :class:`NodeScriptError`, so callers only need to look at ``result["ok"]``.
    """
    node = require_node_modules()
    path = INTEROP_DIR / script
    if not path.is_file():
        raise FileNotFoundError(f"no interop script {script!r} in {INTEROP_DIR}")
    try:
        done = subprocess.run(
            [node, str(path), *args],
            cwd=INTEROP_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NodeScriptError(f"{script} did not finish within {timeout:g}s") from exc
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        raise NodeScriptError(
            f"{script} exited {done.returncode} without a JSON verdict; "
            f"stderr: {done.stderr.strip()[-2000:]!r}"
        )
    expected_code = 0 if result["ok"] else 1
    if done.returncode != expected_code:
        raise NodeScriptError(
            f"{script} printed ok={result['ok']} but exited {done.returncode}; "
            f"stderr: {done.stderr.strip()[-2000:]!r}"
        )
    return result
