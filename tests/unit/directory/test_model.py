"""Directory values: what a user's document says, who is a person, which groups grant roles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tabard.directory import (
    DirectoryGroup,
    DirectoryUser,
    InvalidValueError,
    Member,
    is_person_user_type,
    name_key,
    role_of_group,
)

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def user(**attributes: object) -> DirectoryUser:
    return DirectoryUser(id="u1", attributes=attributes, created_at=T0, updated_at=T0)


def test_projections_come_from_the_scim_document() -> None:
    carol = user(userName="carol", displayName="Carol", userType="Employee", externalId="e-1",
                 emails=[{"value": "c@example.com"}, {"type": "home"}, "junk"],
                 roles=[{"value": "approver"}, {"value": ""}])
    assert (carol.user_name, carol.display_name, carol.user_type, carol.external_id) == (
        "carol", "Carol", "Employee", "e-1")
    assert carol.emails == ("c@example.com",)
    assert carol.roles == ("approver",)
    assert carol.active and carol.is_person


@pytest.mark.parametrize(("active", "expected"), [(None, True), (True, True), (False, False)])
def test_a_user_is_active_unless_told_otherwise(active: bool | None, expected: bool) -> None:
    attributes: dict[str, object] = {"userName": "a"}
    if active is not None:
        attributes["active"] = active
    assert user(**attributes).active is expected


@pytest.mark.parametrize("attributes", [
    {}, {"userName": ""}, {"userName": "   "}, {"userName": 7}, {"userName": "x" * 256},
    {"userName": "a", "active": "false"},
])
def test_invalid_users_are_refused(attributes: dict[str, object]) -> None:
    with pytest.raises(InvalidValueError):
        user(**attributes)


@pytest.mark.parametrize(("user_type", "person"), [
    (None, True), ("Employee", True), ("Contractor", True), ("shared", False),
    ("Shared-Mailbox", False), ("shared mailbox", False), ("SHARED_MAILBOX", False),
    (" Service ", False), ("resource", False), ("service-account", True),
])
def test_accounts_that_are_not_people(user_type: str | None, person: bool) -> None:
    assert is_person_user_type(user_type) is person
    attributes: dict[str, object] = {"userName": "x"}
    if user_type is not None:
        attributes["userType"] = user_type
    assert user(**attributes).is_person is person


@pytest.mark.parametrize(("name", "role"), [
    ("tabard-approver", "approver"), ("Tabard-Approver", "approver"), ("tabard-", None),
    ("approvers", None), ("x-tabard-approver", None), (" tabard-auditor ", "auditor"),
])
def test_groups_named_tabard_role_grant_the_role(name: str, role: str | None) -> None:
    assert role_of_group(name) == role


def test_names_compare_case_insensitively() -> None:
    assert name_key("Carol") == name_key("CAROL") == name_key("carol")
    assert name_key("Straße") == name_key("STRASSE")


def test_group_invariants() -> None:
    members = (Member("u1", "User"), Member("g2", "Group", "nested"))
    group = DirectoryGroup(id="g1", attributes={"displayName": "tabard-approver"},
                           members=members, created_at=T0, updated_at=T0)
    assert group.role == "approver" and group.external_id is None
    with pytest.raises(InvalidValueError):
        DirectoryGroup(id="g1", attributes={"displayName": "x"},
                       members=(Member("u1", "User"), Member("u1", "User")),
                       created_at=T0, updated_at=T0)
    with pytest.raises(InvalidValueError):
        DirectoryGroup(id="g1", attributes={"displayName": "x"},
                       members=(Member("g1", "Group"),), created_at=T0, updated_at=T0)
    with pytest.raises(InvalidValueError):
        DirectoryGroup(id="g1", attributes={}, members=(), created_at=T0, updated_at=T0)
