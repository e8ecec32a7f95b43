"""The SCIM 2.0 service provider in-process: RFC 7644 operations, filters, paging, PATCH,
versions and errors (the live endpoint is also checked by scim2-tester in the integration
suite)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tabard.clock import FakeClock
from tabard.directory import (
    Directory,
    DirectoryNotFoundError,
    DuplicateGroupError,
    DuplicateUserError,
    GroupNotFoundError,
    InvalidFilterError,
    InvalidPathError,
    InvalidSyntaxError,
    InvalidValueError,
    MutabilityError,
    NoTargetError,
    PreconditionFailedError,
    ScimEndpoint,
    UserNotFoundError,
    parse_etag,
)
from tests.unit.directory.conftest import RecordingListener

BASE = "https://tabard.example/scim/v2"
USERS, GROUPS = ScimEndpoint.USERS, ScimEndpoint.GROUPS
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture(autouse=True)
def ticking(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every reading of the clock is a second later: creation order is list order."""
    now = clock.now

    def tick() -> datetime:
        clock.advance(1)
        return now()

    monkeypatch.setattr(clock, "now", tick)


def new_user(directory: Directory, user_name: str, **attributes: Any) -> dict[str, Any]:
    body = {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}
    result = directory.scim.create(USERS, body, BASE)
    assert result.status == 201 and result.body is not None
    return result.body


def new_group(directory: Directory, name: str, *member_ids: str) -> dict[str, Any]:
    body = {"schemas": [GROUP_SCHEMA], "displayName": name,
            "members": [{"value": m} for m in member_ids]}
    result = directory.scim.create(GROUPS, body, BASE)
    assert result.status == 201 and result.body is not None
    return result.body


def names(directory: Directory, **query: str) -> list[str]:
    body = directory.scim.list_resources(USERS, BASE, query).body
    assert body is not None
    return [r["userName"] for r in body["Resources"]]


def patch(directory: Directory, endpoint: ScimEndpoint, resource_id: str,
          *operations: dict[str, Any], if_match: str | None = None) -> dict[str, Any]:
    result = directory.scim.patch(endpoint, resource_id,
                                  {"schemas": [PATCH_OP], "Operations": list(operations)},
                                  BASE, if_match=if_match)
    assert result.status == 200 and result.body is not None
    return result.body


def test_create_returns_the_resource_with_meta_location_and_etag(directory: Directory) -> None:
    result = directory.scim.create(USERS, {
        "schemas": [USER_SCHEMA, ENTERPRISE], "userName": "bjensen", "password": "t1meMa$heen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
        ENTERPRISE: {"employeeNumber": "701984"}, "id": "ignored", "unknownAttr": 1}, BASE)
    body = result.body
    assert body is not None and result.status == 201
    assert body["id"] != "ignored" and "password" not in body and "unknownAttr" not in body
    assert body["schemas"] == [USER_SCHEMA, ENTERPRISE]
    assert body[ENTERPRISE] == {"employeeNumber": "701984"}
    meta = body["meta"]
    assert meta["resourceType"] == "User" and meta["version"] == 'W/"1"'
    assert meta["location"] == f"{BASE}/Users/{body['id']}" == result.location
    assert result.etag == 'W/"1"'
    stored = directory.people.get_user(body["id"])
    assert "password" not in stored.attributes
    fetched = directory.scim.get(USERS, body["id"], BASE)
    assert fetched.body == body


def test_uniqueness_and_validation_errors_carry_their_scim_type(directory: Directory) -> None:
    new_user(directory, "bjensen")
    with pytest.raises(DuplicateUserError):
        directory.scim.create(USERS, {"schemas": [USER_SCHEMA], "userName": "BJENSEN"}, BASE)
    with pytest.raises(InvalidValueError):
        directory.scim.create(USERS, {"schemas": [USER_SCHEMA]}, BASE)
    with pytest.raises(InvalidValueError):
        directory.scim.create(USERS, {"schemas": [USER_SCHEMA], "userName": "x",
                                      "emails": [{"value": "not-an-email"}]}, BASE)
    with pytest.raises(InvalidSyntaxError):
        directory.scim.create(USERS, ["not", "an", "object"], BASE)
    with pytest.raises(UserNotFoundError):
        directory.scim.get(USERS, "no-such-id", BASE)


@pytest.mark.parametrize(("scim_filter", "expected"), [
    ('userName eq "bjensen"', ["bjensen"]),
    ('USERNAME eq "BJENSEN"', ["bjensen"]),
    ('userName co "jen"', ["bjensen", "jjensen"]),
    ('userName sw "j"', ["jjensen"]),
    ('displayName pr', ["bjensen"]),
    ('externalId eq "e-2"', ["jjensen"]),
    ('active eq false', ["jjensen"]),
    ('emails.value eq "b@example.com"', ["bjensen"]),
    ('emails[type eq "work" and value co "example"]', ["bjensen"]),
    ('userName eq "bjensen" or externalId eq "e-2"', ["bjensen", "jjensen"]),
    ('userName co "jen" and not (active eq false)', ["bjensen"]),
    ('title pr', []),
])
def test_filters(directory: Directory, scim_filter: str, expected: list[str]) -> None:
    new_user(directory, "bjensen", displayName="Babs",
             emails=[{"value": "b@example.com", "type": "work"}])
    new_user(directory, "jjensen", externalId="e-2", active=False)
    new_user(directory, "other")
    assert names(directory, filter=scim_filter) == expected


@pytest.mark.parametrize("scim_filter", ['userName eq', 'nosuch eq "x"', 'userName zz "x"',
                                         'active gt true'])
def test_bad_filters_are_invalid_filter(directory: Directory, scim_filter: str) -> None:
    with pytest.raises(InvalidFilterError):
        directory.scim.list_resources(USERS, BASE, {"filter": scim_filter})


def test_paging_is_one_based_and_stable(directory: Directory) -> None:
    for i in range(7):
        new_user(directory, f"user-{i}")
    body = directory.scim.list_resources(USERS, BASE, {"startIndex": "3", "count": "2"}).body
    assert body is not None
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (7, 3, 2)
    assert [r["userName"] for r in body["Resources"]] == ["user-2", "user-3"]
    assert names(directory, startIndex="0", count="1") == ["user-0"]   # startIndex < 1 is 1
    assert names(directory, count="-4") == []                          # negative count is 0
    assert names(directory, startIndex="9") == []
    with pytest.raises(InvalidValueError):
        directory.scim.list_resources(USERS, BASE, {"count": "many"})


def test_max_results_caps_a_page(directory: Directory) -> None:
    for i in range(55):
        directory.people.create_user({"userName": f"u{i:02d}"})
    body = directory.scim.list_resources(USERS, BASE, {"count": "500"}).body
    assert body is not None
    assert body["totalResults"] == 55 and body["itemsPerPage"] == 50


def test_attributes_and_excluded_attributes(directory: Directory) -> None:
    user = new_user(directory, "bjensen", displayName="Babs", title="Boss",
                    emails=[{"value": "b@example.com"}])
    only = directory.scim.get(USERS, user["id"], BASE, {"attributes": "displayName,emails"})
    assert only.body is not None
    assert set(only.body) == {"schemas", "id", "displayName", "emails"}
    without = directory.scim.get(USERS, user["id"], BASE, {"excludedAttributes": "title"})
    assert without.body is not None and "title" not in without.body and "meta" in without.body
    listed = directory.scim.list_resources(USERS, BASE, {"attributes": "userName"}).body
    assert listed is not None and set(listed["Resources"][0]) == {"schemas", "id", "userName"}


def test_search_on_an_endpoint_and_on_the_root(directory: Directory) -> None:
    user = new_user(directory, "bjensen", displayName="Team")
    new_group(directory, "Team", user["id"])
    body = directory.scim.search(USERS, {"filter": 'displayName eq "Team"'}, BASE).body
    assert body is not None and [r["userName"] for r in body["Resources"]] == ["bjensen"]
    both = directory.scim.search(None, {"filter": 'displayName eq "team"',
                                        "attributes": ["displayName"]}, BASE).body
    assert both is not None and both["totalResults"] == 2
    assert sorted(r["meta"]["resourceType"] if "meta" in r else r["schemas"][0]
                  for r in both["Resources"]) == [GROUP_SCHEMA, USER_SCHEMA]
    with pytest.raises(InvalidSyntaxError):
        directory.scim.search(USERS, "filter=x", BASE)


def test_put_replaces_keeps_read_only_and_checks_versions(
        directory: Directory, listener: RecordingListener) -> None:
    user = new_user(directory, "bjensen", title="Boss", nickName="Babs")
    result = directory.scim.replace(USERS, user["id"], {
        "schemas": [USER_SCHEMA], "userName": "bjensen", "active": False, "title": "CEO",
        "id": "other", "meta": {"created": "2000-01-01T00:00:00Z"}}, BASE, if_match='W/"1"')
    body = result.body
    assert body is not None and result.status == 200
    assert body["id"] == user["id"] and body["meta"]["created"] == user["meta"]["created"]
    assert body["title"] == "CEO" and "nickName" not in body and body["active"] is False
    assert result.etag == 'W/"2"'
    assert [e[:3] for e in listener.events] == [("bjensen", False, False)]
    with pytest.raises(PreconditionFailedError):
        directory.scim.replace(USERS, user["id"], {"schemas": [USER_SCHEMA],
                                                   "userName": "bjensen"}, BASE,
                               if_match='W/"1"')
    with pytest.raises(UserNotFoundError):
        directory.scim.replace(USERS, "nope", {"schemas": [USER_SCHEMA], "userName": "x"}, BASE)


def test_patch_users(directory: Directory, listener: RecordingListener) -> None:
    user = new_user(directory, "bjensen", emails=[{"value": "a@example.com", "type": "work"}])
    body = patch(directory, USERS, user["id"],
                 {"op": "replace", "path": "active", "value": False},
                 {"op": "Add", "value": {"displayName": "Babs", "title": "Boss"}},
                 {"op": "add", "path": "emails",
                  "value": [{"value": "b@example.com", "type": "home"}]},
                 {"op": "remove", "path": 'emails[type eq "work"]'},
                 {"op": "replace", "path": "name.givenName", "value": "Barbara"})
    assert body["active"] is False and body["displayName"] == "Babs"
    assert [e["value"] for e in body["emails"]] == ["b@example.com"]
    assert body["name"] == {"givenName": "Barbara"}
    assert body["meta"]["version"] == 'W/"2"'
    assert [e[:3] for e in listener.events] == [("bjensen", False, False)]
    patch(directory, USERS, user["id"], {"op": "replace", "value": {"active": True}})
    assert [e[:3] for e in listener.events][-1] == ("bjensen", True, False)


def test_patch_is_atomic_and_reports_scim_errors(directory: Directory) -> None:
    user = new_user(directory, "bjensen", title="Boss")
    with pytest.raises(NoTargetError):
        patch(directory, USERS, user["id"],
              {"op": "replace", "path": "title", "value": "CEO"},
              {"op": "replace", "path": 'emails[value co "work"].type', "value": "home"})
    assert directory.people.get_user(user["id"]).attributes["title"] == "Boss"
    with pytest.raises(InvalidPathError):
        patch(directory, USERS, user["id"], {"op": "replace", "path": "bad[[", "value": 1})
    with pytest.raises(MutabilityError):
        patch(directory, USERS, user["id"], {"op": "replace", "path": "id", "value": "x"})
    with pytest.raises(MutabilityError):  # a required attribute (RFC 7644 §3.5.2.2)
        patch(directory, USERS, user["id"], {"op": "remove", "path": "userName"})
    with pytest.raises(PreconditionFailedError):
        patch(directory, USERS, user["id"], {"op": "replace", "path": "title", "value": "x"},
              if_match='W/"9"')


def test_group_members_patch_with_value_filters(directory: Directory) -> None:
    a, b, c = (new_user(directory, n)["id"] for n in ("a", "b", "c"))
    group = new_group(directory, "tabard-approver", a)
    assert group["members"] == [{"value": a, "$ref": f"{BASE}/Users/{a}", "type": "User"}]
    body = patch(directory, GROUPS, group["id"],
                 {"op": "add", "path": "members", "value": [{"value": b}, {"value": c}]})
    assert [m["value"] for m in body["members"]] == [a, b, c]
    body = patch(directory, GROUPS, group["id"],
                 {"op": "remove", "path": f'members[value eq "{b}"]'})
    assert [m["value"] for m in body["members"]] == [a, c]
    assert directory.people.find_person("a") is not None
    person_c = directory.people.find_person("c")
    assert person_c is not None and person_c.roles == {"approver"}
    body = patch(directory, GROUPS, group["id"], {"op": "remove", "path": "members"})
    assert "members" not in body
    person_a = directory.people.find_person("a")
    assert person_a is not None and person_a.roles == frozenset()
    with pytest.raises(InvalidValueError):
        patch(directory, GROUPS, group["id"],
              {"op": "add", "path": "members", "value": [{"value": "nobody"}]})


def test_a_user_lists_its_groups_direct_and_nested(directory: Directory) -> None:
    user = new_user(directory, "bjensen")
    inner = new_group(directory, "inner", user["id"])
    outer = new_group(directory, "outer", inner["id"])
    body = directory.scim.get(USERS, user["id"], BASE).body
    assert body is not None
    assert body["groups"] == [
        {"value": inner["id"], "$ref": f"{BASE}/Groups/{inner['id']}", "display": "inner",
         "type": "direct"},
        {"value": outer["id"], "$ref": f"{BASE}/Groups/{outer['id']}", "display": "outer",
         "type": "indirect"},
    ]
    assert outer["members"][0]["type"] == "Group"


def test_groups_put_delete_and_uniqueness(directory: Directory) -> None:
    a = new_user(directory, "a")["id"]
    group = new_group(directory, "team")
    with pytest.raises(DuplicateGroupError):
        new_group(directory, "TEAM")
    replaced = directory.scim.replace(GROUPS, group["id"], {
        "schemas": [GROUP_SCHEMA], "displayName": "Team A",
        "members": [{"value": a, "display": "Alice"}]}, BASE).body
    assert replaced is not None and replaced["members"][0]["display"] == "Alice"
    assert directory.scim.delete(GROUPS, group["id"]).status == 204
    with pytest.raises(GroupNotFoundError):
        directory.scim.get(GROUPS, group["id"], BASE)
    with pytest.raises(GroupNotFoundError):
        directory.scim.delete(GROUPS, group["id"])


def test_delete_user_and_if_none_match(directory: Directory) -> None:
    user = new_user(directory, "bjensen")
    unchanged = directory.scim.get(USERS, user["id"], BASE, if_none_match='W/"1"')
    assert (unchanged.status, unchanged.body, unchanged.etag) == (304, None, 'W/"1"')
    assert directory.scim.get(USERS, user["id"], BASE, if_none_match='W/"0"').status == 200
    with pytest.raises(PreconditionFailedError):
        directory.scim.delete(USERS, user["id"], if_match='"2"')
    assert directory.scim.delete(USERS, user["id"], if_match='"1"').status == 204
    with pytest.raises(UserNotFoundError):
        directory.scim.delete(USERS, user["id"])


def test_etags(directory: Directory) -> None:
    assert parse_etag(None) is None and parse_etag("*") is None
    assert parse_etag('W/"12"') == 12 and parse_etag('"3"') == 3
    with pytest.raises(PreconditionFailedError):
        parse_etag("12")


def test_discovery_documents(directory: Directory) -> None:
    config = directory.scim.service_provider_config(BASE).body
    assert config is not None
    assert config["patch"] == {"supported": True} and config["etag"] == {"supported": True}
    assert config["filter"] == {"supported": True, "maxResults": 50}
    assert config["bulk"]["supported"] is False and config["sort"] == {"supported": False}
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    types = directory.scim.resource_types(BASE).body
    assert types is not None
    assert {t["id"]: t["endpoint"] for t in types["Resources"]} == {
        "User": "/Users", "Group": "/Groups"}
    user_type = directory.scim.resource_type(BASE, "User").body
    assert user_type is not None
    assert user_type["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    schemas = directory.scim.schemas(BASE).body
    assert schemas is not None
    ids = [s["id"] for s in schemas["Resources"]]
    assert USER_SCHEMA in ids and ENTERPRISE in ids and GROUP_SCHEMA in ids
    assert "urn:ietf:params:scim:schemas:core:2.0:Schema" in ids
    one = directory.scim.schema(BASE, USER_SCHEMA).body
    assert one is not None and one["meta"]["location"] == f"{BASE}/Schemas/{USER_SCHEMA}"
    user_name = next(a for a in one["attributes"] if a["name"] == "userName")
    assert user_name["uniqueness"] == "server" and user_name["caseExact"] is False
    with pytest.raises(DirectoryNotFoundError):
        directory.scim.schema(BASE, "urn:nope")
    with pytest.raises(DirectoryNotFoundError):
        directory.scim.resource_type(BASE, "Device")


def test_add_user_validates_like_scim(directory: Directory) -> None:
    carol = directory.scim.add_user("carol", display_name="Carol", emails=["c@example.com"],
                                    roles=["approver"], user_type="Employee")
    assert carol.emails == ("c@example.com",) and carol.roles == ("approver",)
    with pytest.raises(InvalidValueError):
        directory.scim.add_user("dave", emails=["nope"])
    with pytest.raises(DuplicateUserError):
        directory.scim.add_user("CAROL")
