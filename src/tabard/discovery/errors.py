"""Errors of discovery: one class per rule, each with a stable ``code``."""

from __future__ import annotations

from tabard.errors import Invalid

__all__ = ["UnknownPostureFlagError", "UnreadableImportError"]


class UnreadableImportError(Invalid):
    """An import file that cannot be read as a whole: missing, not UTF-8, not a JSON array of
    rows, broken JSON or CSV, no CSV header. Nothing of it is imported."""

    code = "unreadable_import"


class UnknownPostureFlagError(Invalid):
    code = "unknown_posture_flag"
