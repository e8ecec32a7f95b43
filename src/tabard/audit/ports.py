"""What the audit log needs from storage, declared here and filled by ``tabard.store``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from tabard.audit.record import AuditRecord

__all__ = ["AuditStore", "ChainHead", "NewRecord", "StoredCheckpoint"]


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last record: its number and hash."""

    seq: int
    hash: bytes


class NewRecord(NamedTuple):
    """A record to insert, with the index keys ``tabard audit trace`` finds it by (a tuple:
    one is made per record, in the writer's transaction)."""

    record: AuditRecord
    subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint as stored. ``frontier`` (the roots of the perfect subtrees of the
    first ``tree_size`` leaves, see :class:`~tabard.audit.merkle.CompactRange`) is not
    signed: it lets the next checkpoint continue without rereading the whole log, and is
    checked against the signed root before it is used."""

    tree_size: int
    root_hash: bytes
    created_at: datetime
    document: str
    frontier: tuple[bytes, ...]


class AuditStore(Protocol):
    """An append-only, numbered log of records and its checkpoints."""

    def append(self, build: Callable[[ChainHead | None], Sequence[NewRecord]]
               ) -> Sequence[NewRecord]:
        """In one transaction, holding the log's write lock: read the head, call ``build``
        with it and insert what it returns. Committed (durably) when this returns; on any
        error nothing of it is."""
        ...

    def close(self) -> None:
        """Release what appending holds (a connection); the next append takes it again."""
        ...

    def head(self) -> ChainHead | None: ...

    def scan(self, *, after: int = 0, until: int | None = None
             ) -> Iterator[tuple[int, bytes, bytes]]:
        """``(seq, entry, hash)`` of the records ``after < seq <= until`` in order, streamed
        in pages. Rows are returned as stored (tampering included)."""
        ...

    def pages(self, *, after: int = 0, until: int | None = None
              ) -> Iterator[list[tuple[int, bytes, bytes]]]:
        """:meth:`scan`, a page (a list of rows) at a time."""
        ...

    def records(self, *, after: int = 0, limit: int = 100, kind: str | None = None,
                since: datetime | None = None, until: datetime | None = None
                ) -> list[AuditRecord]:
        """Records with ``seq > after`` (and the filters), in order, at most ``limit``."""
        ...

    def find(self, subjects: Sequence[str], *, after: int = 0, limit: int = 1000
             ) -> list[AuditRecord]:
        """Records indexed under any of ``subjects``, in order, at most ``limit``."""
        ...

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None: ...

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every checkpoint, smallest tree first."""
        ...

    def checkpoint(self, tree_size: int | None = None) -> StoredCheckpoint | None:
        """The checkpoint of ``tree_size`` leaves, or the latest one."""
        ...
