"""The directory service: users and groups, roles, persons, and the status notifications that
drive orphan detection."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pytest

from tabard.clock import FakeClock
from tabard.directory import (
    Directory,
    DirectoryUser,
    DuplicateGroupError,
    DuplicateUserError,
    InvalidValueError,
    Member,
    MemberRef,
    PreconditionFailedError,
    UserNotFoundError,
)
from tests.unit.directory.conftest import RecordingListener


def test_users_are_found_by_name_case_insensitively(directory: Directory) -> None:
    people = directory.people
    carol = people.create_user({"userName": "Carol", "displayName": "Carol Diaz"})
    assert people.find_user("CAROL") == carol
    assert people.get_user(carol.id) == carol
    assert people.find_user("dave") is None
    with pytest.raises(UserNotFoundError):
        people.get_user("nope")
    with pytest.raises(DuplicateUserError):
        people.create_user({"userName": "carol"})


def test_provider_attributes_and_passwords_are_never_stored(directory: Directory) -> None:
    user = directory.people.create_user({
        "userName": "a", "password": "hunter2", "id": "mine", "meta": {"version": "x"},
        "schemas": ["urn:x"], "groups": [{"value": "g"}], "nickName": None, "title": "CTO"})
    assert dict(user.attributes) == {"userName": "a", "title": "CTO"}
    assert user.id != "mine" and user.version == 1


def test_deactivation_reactivation_and_deletion_are_announced(
        directory: Directory, listener: RecordingListener, clock: FakeClock) -> None:
    people = directory.people
    carol = people.create_user({"userName": "carol", "active": True})
    clock.advance(timedelta(minutes=1))
    people.update_user(carol.id, lambda u: {**u.attributes, "title": "Engineer"})
    assert listener.events == []
    off = people.update_user(carol.id, lambda u: {**u.attributes, "active": False})
    assert off.version == 3 and not off.active
    clock.advance(timedelta(minutes=1))
    on = people.set_active("CAROL", True)
    clock.advance(timedelta(minutes=1))
    people.delete_user(carol.id)
    start = clock.now() - timedelta(minutes=3)
    assert listener.events == [
        ("carol", False, False, start + timedelta(minutes=1)),
        ("carol", True, False, on.updated_at),
        ("carol", False, True, start + timedelta(minutes=3)),
    ]
    with pytest.raises(UserNotFoundError):
        people.get_user(carol.id)


def test_an_unchanged_write_keeps_the_version_and_tells_nobody(
        directory: Directory, listener: RecordingListener) -> None:
    people = directory.people
    carol = people.create_user({"userName": "carol", "active": False})
    assert people.update_user(carol.id, lambda u: dict(u.attributes)) == carol
    assert people.set_active("carol", False) == carol
    assert listener.events == []


def test_a_rename_retires_the_old_name(directory: Directory,
                                       listener: RecordingListener) -> None:
    people = directory.people
    carol = people.create_user({"userName": "carol"})
    people.update_user(carol.id, lambda u: {**u.attributes, "userName": "CAROL"})
    assert listener.events == []  # the same name in another case
    renamed = people.update_user(carol.id, lambda u: {**u.attributes, "userName": "caroline"})
    assert listener.events == [("CAROL", False, True, renamed.updated_at)]


def test_a_failing_listener_neither_blocks_the_change_nor_the_others(
        directory: Directory, listener: RecordingListener,
        caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def user_status_changed(self, user_name: str, active: bool, deleted: bool,
                                at: datetime) -> None:
            raise RuntimeError("down")

    later = RecordingListener()
    directory.people.subscribe(Broken())
    directory.people.subscribe(later)
    carol = directory.people.create_user({"userName": "carol"})
    with caplog.at_level(logging.ERROR, logger="tabard.directory"):
        directory.people.set_active("carol", False)
    assert not directory.people.get_user(carol.id).active
    assert [e[:3] for e in listener.events] == [("carol", False, False)]
    assert [e[:3] for e in later.events] == [("carol", False, False)]
    assert "user status listener failed" in caplog.text


def test_if_match_names_the_version_read(directory: Directory) -> None:
    people = directory.people
    carol = people.create_user({"userName": "carol"})
    with pytest.raises(PreconditionFailedError):
        people.update_user(carol.id, lambda u: {**u.attributes, "title": "x"}, if_match=2)
    updated = people.update_user(carol.id, lambda u: {**u.attributes, "title": "x"}, if_match=1)
    with pytest.raises(PreconditionFailedError):
        people.delete_user(carol.id, if_match=1)
    people.delete_user(carol.id, if_match=updated.version)


def test_a_concurrent_write_is_recomputed_on_the_newer_version(directory: Directory) -> None:
    people = directory.people
    carol = people.create_user({"userName": "carol", "nickName": "c"})
    seen: list[int] = []

    def change(current: DirectoryUser) -> dict[str, Any]:
        seen.append(current.version)
        if len(seen) == 1:  # another writer gets in between our read and our write
            people.update_user(carol.id, lambda u: {**u.attributes, "title": "Boss"})
        return {**current.attributes, "nickName": "caro"}

    result = people.update_user(carol.id, change)
    assert seen == [1, 2]
    assert result.version == 3
    assert result.attributes["title"] == "Boss" and result.attributes["nickName"] == "caro"


def test_members_must_exist_and_match_their_type(directory: Directory) -> None:
    people = directory.people
    carol = people.create_user({"userName": "carol"})
    inner = people.create_group({"displayName": "inner"})
    group = people.create_group({"displayName": "outer"}, [
        MemberRef(carol.id, None, "Carol"), MemberRef(inner.id, "group"),
        MemberRef(carol.id, "User")])
    assert group.members == (Member(carol.id, "User", "Carol"), Member(inner.id, "Group"))
    for bad in (MemberRef("nobody"), MemberRef(carol.id, "Group"), MemberRef(inner.id, "User"),
                MemberRef(carol.id, "Device"), MemberRef("")):
        with pytest.raises(InvalidValueError):
            people.create_group({"displayName": "bad"}, [bad])
    with pytest.raises(DuplicateGroupError):
        people.create_group({"displayName": "OUTER"})


def test_groups_cannot_contain_themselves(directory: Directory) -> None:
    people = directory.people
    a = people.create_group({"displayName": "a"})
    b = people.create_group({"displayName": "b"}, [MemberRef(a.id)])
    c = people.create_group({"displayName": "c"}, [MemberRef(b.id)])
    with pytest.raises(InvalidValueError):
        people.update_group(a.id, lambda g: (g.attributes, [MemberRef(c.id)]))
    with pytest.raises(InvalidValueError):
        people.update_group(a.id, lambda g: (g.attributes, [MemberRef(a.id)]))


def test_roles_come_from_the_user_and_from_tabard_groups_at_any_depth(
        directory: Directory) -> None:
    people = directory.people
    carol = people.create_user({"userName": "carol", "roles": [{"value": " Auditor "}]})
    dave = people.create_user({"userName": "dave"})
    leads = people.create_group({"displayName": "leads"}, [MemberRef(carol.id)])
    approvers = people.create_group({"displayName": "Tabard-Approver"},
                                    [MemberRef(leads.id), MemberRef(dave.id)])
    people.create_group({"displayName": "tabard-operator"}, [MemberRef(approvers.id)])
    assert people.roles_of(carol) == {"auditor", "approver", "operator"}
    assert people.roles_of(dave) == {"approver", "operator"}
    details = people.describe("CAROL")
    assert [(m.group.display_name, m.direct) for m in details.memberships] == [
        ("leads", True), ("Tabard-Approver", False), ("tabard-operator", False)]
    assert details.roles == {"auditor", "approver", "operator"}
    resolver = people.membership_resolver()
    assert resolver(carol.id) == details.memberships
    people.delete_group(leads.id)
    assert people.roles_of(people.get_user(carol.id)) == {"auditor"}


def test_deleting_a_user_removes_them_from_their_groups(directory: Directory) -> None:
    people = directory.people
    carol = people.create_user({"userName": "carol"})
    approvers = people.create_group({"displayName": "tabard-approver"}, [MemberRef(carol.id)])
    people.delete_user(carol.id)
    after = people.get_group(approvers.id)
    assert after.members == () and after.version == approvers.version + 1


def test_find_person_tells_the_registry_what_it_needs(directory: Directory) -> None:
    people = directory.people
    carol = people.create_user({"userName": "carol", "displayName": "Carol"})
    people.create_user({"userName": "team-inbox", "userType": "Shared Mailbox"})
    people.create_user({"userName": "gone", "active": False})
    people.create_group({"displayName": "tabard-approver"}, [MemberRef(carol.id)])
    person = people.find_person("Carol")
    assert person is not None
    assert (person.id, person.user_name, person.display_name, person.active,
            person.is_person, person.roles) == (carol.id, "carol", "Carol", True, True,
                                                 frozenset({"approver"}))
    inbox = people.find_person("team-inbox")
    assert inbox is not None and not inbox.is_person and inbox.active
    gone = people.find_person("gone")
    assert gone is not None and not gone.active
    assert people.find_person("tabard-approver") is None  # a group is nobody
    assert people.find_person("nobody") is None
