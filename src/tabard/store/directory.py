"""SQL implementations of the directory's stores: users, groups with members, SCIM tokens.

Names are unique through a casefolded key column; writes are conditional on the version the
caller read; members live in two tables with foreign keys (users, groups), so removing a
member and bumping the versions of the groups it was in happen in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, union_all, update
from sqlalchemy.exc import IntegrityError

from tabard.directory import (
    DirectoryGroup,
    DirectoryUser,
    DuplicateGroupError,
    DuplicateUserError,
    InvalidValueError,
    Member,
    name_key,
)
from tabard.store.db import Database
from tabard.store.tables import (
    directory_group_groups,
    directory_group_users,
    directory_groups,
    directory_users,
)

__all__ = ["SqlGroupStore", "SqlUserStore"]

_Users = list[DirectoryUser]
_Groups = list[DirectoryGroup]


def _user(row: Any) -> DirectoryUser:
    return DirectoryUser(id=row.id, attributes=row.attributes, created_at=row.created_at,
                         updated_at=row.updated_at, version=row.version)


def _user_values(user: DirectoryUser) -> dict[str, Any]:
    return {"user_name": user.user_name, "user_name_key": name_key(user.user_name),
            "active": user.active, "attributes": dict(user.attributes), "version": user.version,
            "updated_at": user.updated_at}


def _bump_groups(c: Connection, group_ids: Iterable[str], at: datetime) -> None:
    ids = sorted(set(group_ids))
    if ids:
        c.execute(update(directory_groups).where(directory_groups.c.id.in_(ids))
                  .values(version=directory_groups.c.version + 1, updated_at=at))


class SqlUserStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _taken(self, user: DirectoryUser) -> DuplicateUserError:
        return DuplicateUserError(f"a user named {user.user_name!r} exists already")

    def add(self, user: DirectoryUser) -> None:
        try:
            with self._db.begin() as c:
                c.execute(insert(directory_users).values(
                    id=user.id, created_at=user.created_at, **_user_values(user)))
        except IntegrityError:
            raise self._taken(user) from None

    def get(self, user_id: str) -> DirectoryUser | None:
        with self._db.connect() as c:
            row = c.execute(select(directory_users).where(directory_users.c.id == user_id)).first()
        return _user(row) if row else None

    def find_by_name(self, user_name: str) -> DirectoryUser | None:
        with self._db.connect() as c:
            row = c.execute(select(directory_users).where(
                directory_users.c.user_name_key == name_key(user_name))).first()
        return _user(row) if row else None

    def list(self) -> _Users:
        with self._db.connect() as c:
            rows = c.execute(select(directory_users).order_by(
                directory_users.c.created_at, directory_users.c.id)).all()
        return [_user(r) for r in rows]

    def update(self, user: DirectoryUser, expected_version: int) -> bool:
        try:
            with self._db.begin() as c:
                result = c.execute(update(directory_users).where(
                    directory_users.c.id == user.id,
                    directory_users.c.version == expected_version,
                ).values(**_user_values(user)))
        except IntegrityError:
            raise self._taken(user) from None
        return result.rowcount > 0

    def delete(self, user_id: str, expected_version: int, at: datetime) -> bool:
        with self._db.begin() as c:
            groups = c.execute(select(directory_group_users.c.group_id).where(
                directory_group_users.c.user_id == user_id)).scalars().all()
            result = c.execute(delete(directory_users).where(
                directory_users.c.id == user_id, directory_users.c.version == expected_version))
            if result.rowcount == 0:
                return False
            c.execute(delete(directory_group_users).where(
                directory_group_users.c.user_id == user_id))
            _bump_groups(c, groups, at)
        return True


def _member_rows(c: Connection, group_ids: Sequence[str] | None) -> dict[str, list[Member]]:
    users = select(directory_group_users.c.group_id,
                   directory_group_users.c.user_id.label("member_id"),
                   directory_group_users.c.position, directory_group_users.c.display)
    groups = select(directory_group_groups.c.group_id,
                    directory_group_groups.c.member_group_id.label("member_id"),
                    directory_group_groups.c.position, directory_group_groups.c.display)
    if group_ids is not None:
        users = users.where(directory_group_users.c.group_id.in_(group_ids))
        groups = groups.where(directory_group_groups.c.group_id.in_(group_ids))
    found: dict[str, list[tuple[int, Member]]] = {}
    for row in c.execute(users).all():
        found.setdefault(row.group_id, []).append(
            (row.position, Member(row.member_id, "User", row.display)))
    for row in c.execute(groups).all():
        found.setdefault(row.group_id, []).append(
            (row.position, Member(row.member_id, "Group", row.display)))
    return {gid: [m for _, m in sorted(entries, key=lambda e: e[0])]
            for gid, entries in found.items()}


def _group(row: Any, members: dict[str, list[Member]]) -> DirectoryGroup:
    return DirectoryGroup(id=row.id, attributes=row.attributes,
                          members=tuple(members.get(row.id, ())), created_at=row.created_at,
                          updated_at=row.updated_at, version=row.version)


def _group_values(group: DirectoryGroup) -> dict[str, Any]:
    return {"display_name": group.display_name, "display_name_key": name_key(group.display_name),
            "attributes": dict(group.attributes), "version": group.version,
            "updated_at": group.updated_at}


def _insert_members(c: Connection, group: DirectoryGroup) -> None:
    users = [{"group_id": group.id, "user_id": m.value, "position": i, "display": m.display}
             for i, m in enumerate(group.members) if m.type == "User"]
    groups = [{"group_id": group.id, "member_group_id": m.value, "position": i,
               "display": m.display}
              for i, m in enumerate(group.members) if m.type == "Group"]
    if users:
        c.execute(insert(directory_group_users), users)
    if groups:
        c.execute(insert(directory_group_groups), groups)


class SqlGroupStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _integrity(self, group: DirectoryGroup) -> Exception:
        """A taken name, or else a member that no longer exists (foreign key)."""
        holder = self.find_by_name(group.display_name)
        if holder is not None and holder.id != group.id:
            return DuplicateGroupError(f"a group named {group.display_name!r} exists already")
        return InvalidValueError("a member of the group no longer exists")

    def add(self, group: DirectoryGroup) -> None:
        try:
            with self._db.begin() as c:
                c.execute(insert(directory_groups).values(
                    id=group.id, created_at=group.created_at, **_group_values(group)))
                _insert_members(c, group)
        except IntegrityError:
            raise self._integrity(group) from None

    def _load(self, c: Connection, where: Any) -> _Groups:
        rows = c.execute(select(directory_groups).where(where).order_by(
            directory_groups.c.created_at, directory_groups.c.id)).all()
        if not rows:
            return []
        members = _member_rows(c, [r.id for r in rows])
        return [_group(r, members) for r in rows]

    def get(self, group_id: str) -> DirectoryGroup | None:
        with self._db.connect() as c:
            found = self._load(c, directory_groups.c.id == group_id)
        return found[0] if found else None

    def find_by_name(self, display_name: str) -> DirectoryGroup | None:
        with self._db.connect() as c:
            found = self._load(c, directory_groups.c.display_name_key == name_key(display_name))
        return found[0] if found else None

    def list(self) -> _Groups:
        with self._db.connect() as c:
            rows = c.execute(select(directory_groups).order_by(
                directory_groups.c.created_at, directory_groups.c.id)).all()
            members = _member_rows(c, None)
        return [_group(r, members) for r in rows]

    def update(self, group: DirectoryGroup, expected_version: int) -> bool:
        try:
            with self._db.begin() as c:
                result = c.execute(update(directory_groups).where(
                    directory_groups.c.id == group.id,
                    directory_groups.c.version == expected_version,
                ).values(**_group_values(group)))
                if result.rowcount == 0:
                    return False
                c.execute(delete(directory_group_users).where(
                    directory_group_users.c.group_id == group.id))
                c.execute(delete(directory_group_groups).where(
                    directory_group_groups.c.group_id == group.id))
                _insert_members(c, group)
        except IntegrityError:
            raise self._integrity(group) from None
        return True

    def delete(self, group_id: str, expected_version: int, at: datetime) -> bool:
        with self._db.begin() as c:
            parents = c.execute(select(directory_group_groups.c.group_id).where(
                directory_group_groups.c.member_group_id == group_id)).scalars().all()
            result = c.execute(delete(directory_groups).where(
                directory_groups.c.id == group_id,
                directory_groups.c.version == expected_version))
            if result.rowcount == 0:
                return False
            c.execute(delete(directory_group_groups).where(
                (directory_group_groups.c.group_id == group_id)
                | (directory_group_groups.c.member_group_id == group_id)))
            c.execute(delete(directory_group_users).where(
                directory_group_users.c.group_id == group_id))
            _bump_groups(c, (p for p in parents if p != group_id), at)
        return True

    def containing(self, member_id: str) -> _Groups:
        ids = union_all(
            select(directory_group_users.c.group_id).where(
                directory_group_users.c.user_id == member_id),
            select(directory_group_groups.c.group_id).where(
                directory_group_groups.c.member_group_id == member_id),
        ).subquery()
        with self._db.connect() as c:
            return self._load(c, directory_groups.c.id.in_(select(ids.c.group_id)))
