"""The GroupStore contract on SQLite and PostgreSQL: members that exist, in order, nested
groups, unique names, conditional writes."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tabard.directory import (
    DirectoryGroup,
    DirectoryUser,
    DuplicateGroupError,
    InvalidValueError,
    Member,
)
from tabard.store import Database, SqlGroupStore, SqlUserStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
_SECONDS = itertools.count()


def user(users: SqlUserStore, name: str) -> DirectoryUser:
    at = T0 + timedelta(seconds=next(_SECONDS))
    created = DirectoryUser(id=str(uuid.uuid4()), attributes={"userName": name},
                            created_at=at, updated_at=at)
    users.add(created)
    return created


def group(name: str, *members: Member, external_id: str | None = None) -> DirectoryGroup:
    at = T0 + timedelta(seconds=next(_SECONDS))
    attributes = {"displayName": name}
    if external_id:
        attributes["externalId"] = external_id
    return DirectoryGroup(id=str(uuid.uuid4()), attributes=attributes, members=members,
                          created_at=at, updated_at=at)


def test_round_trip_keeps_members_in_order(db: Database) -> None:
    users, groups = SqlUserStore(db), SqlGroupStore(db)
    a, b = user(users, "a"), user(users, "b")
    inner = group("inner")
    groups.add(inner)
    outer = group("Outer", Member(b.id, "User", "Bee"), Member(inner.id, "Group"),
                  Member(a.id, "User"), external_id="ext-1")
    groups.add(outer)
    assert groups.get(outer.id) == outer
    assert groups.find_by_name("OUTER") == outer
    assert groups.list() == [inner, outer]
    assert groups.get(str(uuid.uuid4())) is None


def test_names_are_unique_and_members_must_exist(db: Database) -> None:
    users, groups = SqlUserStore(db), SqlGroupStore(db)
    groups.add(group("Admins"))
    with pytest.raises(DuplicateGroupError):
        groups.add(group("ADMINS"))
    with pytest.raises(InvalidValueError):
        groups.add(group("ghosts", Member(str(uuid.uuid4()), "User")))
    carol = user(users, "carol")
    with pytest.raises(InvalidValueError):  # a user's id is not a group's
        groups.add(group("wrong-type", Member(carol.id, "Group")))
    assert groups.find_by_name("ghosts") is None
    assert [g.display_name for g in groups.list()] == ["Admins"]


def test_update_replaces_members_if_at_the_version(db: Database) -> None:
    users, groups = SqlUserStore(db), SqlGroupStore(db)
    a, b = user(users, "a"), user(users, "b")
    team = group("team", Member(a.id, "User"))
    groups.add(team)
    changed = replace(team, attributes={"displayName": "Team"},
                      members=(Member(b.id, "User", "b"), Member(a.id, "User")), version=2)
    assert groups.update(changed, 1)
    assert groups.get(team.id) == changed
    assert not groups.update(replace(changed, members=(), version=3), 1)
    assert groups.get(team.id) == changed
    groups.add(group("other"))
    with pytest.raises(DuplicateGroupError):
        groups.update(replace(changed, attributes={"displayName": "OTHER"}, version=3), 2)
    with pytest.raises(InvalidValueError):
        groups.update(replace(changed, members=(Member("nobody", "User"),), version=3), 2)
    assert groups.get(team.id) == changed


def test_containing_and_nested_deletion(db: Database) -> None:
    users, groups = SqlUserStore(db), SqlGroupStore(db)
    carol = user(users, "carol")
    inner = group("inner", Member(carol.id, "User"))
    groups.add(inner)
    outer = group("outer", Member(inner.id, "Group"), Member(carol.id, "User"))
    groups.add(outer)
    assert {g.id for g in groups.containing(carol.id)} == {inner.id, outer.id}
    assert [g.id for g in groups.containing(inner.id)] == [outer.id]
    later = T0 + timedelta(days=1)
    assert not groups.delete(inner.id, 5, later)
    assert groups.delete(inner.id, 1, later)
    assert groups.get(inner.id) is None
    stored = groups.get(outer.id)
    assert stored is not None
    assert stored.members == (Member(carol.id, "User"),)
    assert (stored.version, stored.updated_at) == (2, later)
    assert [g.id for g in groups.containing(carol.id)] == [outer.id]
