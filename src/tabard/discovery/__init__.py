"""Discovery: finding the non-human identities tabard did not issue and judging their posture.

:mod:`.files` reads import files (CSV, JSON) as streams of rows, :mod:`.rows` turns a row into
an inventory record or field errors, :mod:`.posture` flags records at read time, and
:class:`InventoryDiscovery` is the use case the server calls. Records themselves belong to
the registry (:mod:`tabard.registry.inventory`).
"""

from tabard.discovery.errors import UnknownPostureFlagError, UnreadableImportError
from tabard.discovery.files import ImportFile, ImportFormat, RowError, SourceRow
from tabard.discovery.posture import (
    LONG_LIVED_AFTER,
    UNUSED_AFTER,
    AssessedNhi,
    PostureFlag,
    assess,
    parse_flags,
)
from tabard.discovery.rows import (
    DEFAULT_SOURCE,
    FIELDS,
    FieldError,
    canonical_field,
    is_blank,
    validate_row,
)
from tabard.discovery.service import (
    MAX_IMPORT_BATCH,
    MAX_IMPORT_BATCH_BYTES,
    ImportReport,
    InventoryDiscovery,
)

__all__ = [
    "DEFAULT_SOURCE",
    "FIELDS",
    "LONG_LIVED_AFTER",
    "MAX_IMPORT_BATCH",
    "MAX_IMPORT_BATCH_BYTES",
    "UNUSED_AFTER",
    "AssessedNhi",
    "FieldError",
    "ImportFile",
    "ImportFormat",
    "ImportReport",
    "InventoryDiscovery",
    "PostureFlag",
    "RowError",
    "SourceRow",
    "UnknownPostureFlagError",
    "UnreadableImportError",
    "assess",
    "canonical_field",
    "is_blank",
    "parse_flags",
    "validate_row",
]
