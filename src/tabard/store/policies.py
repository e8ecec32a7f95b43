"""SQL implementation of :class:`tabard.policy.PolicyStore`: the current bundle's files and
the history of policy epochs. A new epoch replaces the files and adds its history row in one
transaction; the epoch number is the history's primary key, so two servers accepting a
bundle on the same epoch cannot both succeed."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from tabard.policy import PolicyEpoch, PolicyEpochConflictError, StoredPolicies
from tabard.store.db import Database
from tabard.store.tables import policy_epochs, policy_files

__all__ = ["SqlPolicyStore"]


def _epoch(row: Any) -> PolicyEpoch:
    return PolicyEpoch(epoch=int(row.epoch), actor=row.actor, at=row.at, sha256=row.sha256,
                       files=tuple(row.files))


class SqlPolicyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def current(self) -> StoredPolicies | None:
        with self._db.begin() as c:
            row = c.execute(select(policy_epochs).order_by(policy_epochs.c.epoch.desc())
                            .limit(1)).first()
            if row is None:
                return None
            files = c.execute(select(policy_files.c.name, policy_files.c.content)).all()
        return StoredPolicies(_epoch(row), {f.name: f.content for f in files})

    def current_epoch(self) -> int:
        with self._db.read() as c:
            value = c.execute(select(func.max(policy_epochs.c.epoch))).scalar()
        return int(value or 0)

    def save(self, files: Mapping[str, str], record: PolicyEpoch) -> None:
        try:
            with self._db.begin() as c:
                c.execute(insert(policy_epochs).values(
                    epoch=record.epoch, actor=record.actor, at=record.at, sha256=record.sha256,
                    files=list(record.files)))
                c.execute(delete(policy_files))
                if files:
                    c.execute(insert(policy_files),
                              [{"name": n, "content": t} for n, t in sorted(files.items())])
        except IntegrityError:
            raise PolicyEpochConflictError(f"policy epoch {record.epoch} was taken by another "
                                           "change; read the policies again") from None

    def history(self, limit: int) -> builtins.list[PolicyEpoch]:
        with self._db.read() as c:
            rows = c.execute(select(policy_epochs).order_by(policy_epochs.c.epoch.desc())
                             .limit(limit)).all()
        return [_epoch(r) for r in rows]
