"""The UserStore contract on SQLite and PostgreSQL: names unique case-insensitively, versions,
deletion leaving every group."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tabard.directory import DirectoryGroup, DirectoryUser, DuplicateUserError, Member
from tabard.store import Database, SqlGroupStore, SqlUserStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
_SECONDS = itertools.count()


def user(user_name: str, **attributes: Any) -> DirectoryUser:
    at = T0 + timedelta(seconds=next(_SECONDS))
    return DirectoryUser(id=str(uuid.uuid4()), attributes={"userName": user_name, **attributes},
                         created_at=at, updated_at=at)


def group(name: str, *members: Member) -> DirectoryGroup:
    at = T0 + timedelta(seconds=next(_SECONDS))
    return DirectoryGroup(id=str(uuid.uuid4()), attributes={"displayName": name},
                          members=members, created_at=at, updated_at=at)


def test_round_trip_keeps_the_whole_document(db: Database) -> None:
    store = SqlUserStore(db)
    carol = user("carol", active=True, displayName="Carol Diaz", userType="Employee",
                 emails=[{"value": "carol@example.com", "primary": True}],
                 roles=[{"value": "approver"}], name={"givenName": "Carol"},
                 **{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                    {"employeeNumber": "7", "manager": {"value": "x"}}})
    store.add(carol)
    assert store.get(carol.id) == carol
    assert store.get(str(uuid.uuid4())) is None
    assert store.find_by_name("CAROL") == carol
    assert store.find_by_name("carol ") is None


def test_user_names_are_unique_whatever_their_case(db: Database) -> None:
    store = SqlUserStore(db)
    store.add(user("Carol"))
    with pytest.raises(DuplicateUserError):
        store.add(user("cAROL"))
    dave = user("dave")
    store.add(dave)
    with pytest.raises(DuplicateUserError):
        store.update(replace(dave, attributes={"userName": "CAROL"}, version=2), 1)
    assert store.get(dave.id) == dave


def test_list_is_in_creation_order(db: Database) -> None:
    store = SqlUserStore(db)
    users = [user(f"user-{i}") for i in range(5)]
    for u in reversed(users):
        store.add(u)
    assert store.list() == sorted(users, key=lambda u: (u.created_at, u.id))


def test_update_is_conditional_on_the_version(db: Database) -> None:
    store = SqlUserStore(db)
    carol = user("carol")
    store.add(carol)
    renamed = replace(carol, attributes={"userName": "caroline", "active": False},
                      updated_at=T0 + timedelta(days=1), version=2)
    assert store.update(renamed, 1)
    assert store.get(carol.id) == renamed
    assert store.find_by_name("carol") is None
    assert store.find_by_name("Caroline") == renamed
    stale = replace(carol, attributes={"userName": "stale"}, version=2)
    assert not store.update(stale, 1)
    assert store.get(carol.id) == renamed
    assert not store.update(replace(stale, id=str(uuid.uuid4())), 1)


def test_delete_is_conditional_and_leaves_every_group(db: Database) -> None:
    users, groups = SqlUserStore(db), SqlGroupStore(db)
    carol, dave = user("carol"), user("dave")
    users.add(carol)
    users.add(dave)
    approvers = group("tabard-approver", Member(carol.id, "User", "Carol"),
                      Member(dave.id, "User"))
    others = group("others", Member(dave.id, "User"))
    groups.add(approvers)
    groups.add(others)
    later = T0 + timedelta(days=2)
    assert not users.delete(carol.id, 7, later)
    assert users.get(carol.id) == carol
    assert users.delete(carol.id, 1, later)
    assert users.get(carol.id) is None
    assert not users.delete(carol.id, 1, later)
    after = groups.get(approvers.id)
    assert after is not None
    assert after.members == (Member(dave.id, "User"),)
    assert (after.version, after.updated_at) == (2, later)
    assert groups.get(others.id) == others
    assert groups.containing(carol.id) == []
