"""SCIM 2.0 provisioning against a running ``tabard dev``: scim2-tester on the live endpoint
(SQLite and PostgreSQL), the wire format, the separation of SCIM and admin tokens, and the
``tabard users`` / ``tabard scim`` commands."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

from tests.support.platform import DevPlatform, run_cli

SCIM_JSON = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def scim_token(platform: DevPlatform, name: str = "idp") -> str:
    response = platform.http().post("/api/v1/scim-tokens", json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


@pytest.fixture(scope="module")
def scim(platform: DevPlatform) -> Iterator[httpx.Client]:
    token = scim_token(platform, "module")
    with httpx.Client(base_url=platform.url + "/scim/v2", timeout=30,
                      headers={"Authorization": f"Bearer {token}",
                               "Content-Type": SCIM_JSON}) as client:
        yield client


def _describe(result: CheckResult) -> str:
    return (f"{result.status.name} {result.resource_type or '-'} {result.title}: "
            f"{result.reason} {str(result.data)[:300] if result.data is not None else ''}")


def test_scim2_tester_finds_no_error_on_the_live_endpoint(backend_platform: DevPlatform) -> None:
    token = scim_token(backend_platform, "scim2-tester")
    client = SyncSCIMClient(httpx2.Client(base_url=backend_platform.url + "/scim/v2",
                                          headers={"Authorization": f"Bearer {token}"},
                                          timeout=30))
    results = check_server(client)
    failures = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    assert not failures, "scim2-tester failures:\n" + "\n".join(map(_describe, failures))
    # the checks ran for real: discovery, then every operation on both resource types
    ran = Counter((r.resource_type, r.title) for r in results if r.status == Status.SUCCESS)
    for resource_type in ("User", "Group"):
        for check in ("object_creation", "object_query", "object_query_without_id",
                      "object_replacement", "object_deletion", "check_add_attribute",
                      "check_replace_attribute", "check_remove_attribute",
                      "object_query_with_attributes", "search_with_attributes"):
            assert ran[(resource_type, check)] >= 1, (resource_type, check)
    assert ran[(None, "random_url")] == 1
    assert ran[(None, "service_provider_config_endpoint_methods")] == 4


def _error(response: httpx.Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM_JSON)
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    assert body["detail"]
    return body


def test_scim_and_admin_tokens_open_only_their_own_api(platform: DevPlatform,
                                                       scim: httpx.Client) -> None:
    base = platform.url + "/scim/v2"
    token = str(scim.headers["Authorization"]).removeprefix("Bearer ")
    for headers in ({}, {"Authorization": f"Bearer {platform.admin_token}"},
                    {"Authorization": "Bearer tabard_scim_forged"},
                    {"Authorization": f"Basic {token}"}):
        response = httpx.get(base + "/Users", headers=headers)
        _error(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    _error(httpx.get(base + "/no-such-thing"), 401)  # no probing without a token
    for path in ("/api/v1/users", "/api/v1/scim-tokens", "/api/v1/entries"):
        response = httpx.get(platform.url + path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert scim.get("/Users").status_code == 200
    revoked = scim_token(platform, "short-lived")
    tokens = platform.http().get("/api/v1/scim-tokens").json()
    assert all("token" not in t for t in tokens)
    [record] = [t for t in tokens if t["name"] == "short-lived"]
    assert platform.http().delete(f"/api/v1/scim-tokens/{record['id']}").status_code == 204
    _error(httpx.get(base + "/Users", headers={"Authorization": f"Bearer {revoked}"}), 401)


def test_the_wire_format(scim: httpx.Client) -> None:
    created = scim.post("/Users", json={"schemas": [USER_SCHEMA], "userName": "wire"})
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith(SCIM_JSON)
    user = created.json()
    assert created.headers["location"] == user["meta"]["location"]
    assert created.headers["location"].endswith(f"/scim/v2/Users/{user['id']}")
    assert created.headers["etag"] == user["meta"]["version"] == 'W/"1"'
    # plain application/json is accepted too (RFC 7644 §8.1)
    plain = scim.post("/Users", content=json.dumps({"userName": "plain-json"}),
                      headers={"Content-Type": "application/json"})
    assert plain.status_code == 201, plain.text
    unchanged = scim.get(f"/Users/{user['id']}", headers={"If-None-Match": 'W/"1"'})
    assert unchanged.status_code == 304 and unchanged.headers["etag"] == 'W/"1"'
    _error(scim.post("/Users", json={"schemas": [USER_SCHEMA], "userName": "WIRE"}), 409,
           "uniqueness")
    _error(scim.get("/Users", params={"filter": "userName eq"}), 400, "invalidFilter")
    _error(scim.post("/Users", content=b"{not json"), 400, "invalidSyntax")
    _error(scim.put(f"/Users/{user['id']}", headers={"If-Match": 'W/"7"'},
                    json={"schemas": [USER_SCHEMA], "userName": "wire"}), 412)
    _error(scim.get("/Users/6f0a0000-0000-0000-0000-000000000000"), 404)
    _error(scim.get("/Nothing/here"), 404)
    _error(scim.post("/ServiceProviderConfig", json={}), 405)
    _error(scim.delete("/Users"), 405)
    _error(scim.post("/Bulk", json={}), 501)
    _error(scim.get("/Me"), 501)
    listed = scim.get("/Users", params={"filter": 'userName eq "WIRE"'}).json()
    assert listed["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert [r["id"] for r in listed["Resources"]] == [user["id"]]
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    _error(scim.get(f"/Users/{user['id']}"), 404)


def _cli_json(platform: DevPlatform, *args: str) -> Any:
    result = platform.cli(*args, "--json")
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_people_through_scim_and_the_cli(platform: DevPlatform, scim: httpx.Client) -> None:
    issued = _cli_json(platform, "scim", "token", "create", "--name", "cli-idp")
    assert issued["token"].startswith("tabard_scim_")
    assert issued["scim_url"] == platform.url + "/scim/v2"
    with httpx.Client(base_url=issued["scim_url"], timeout=30,
                      headers={"Authorization": f"Bearer {issued['token']}"}) as idp:
        carol = idp.post("/Users", json={
            "schemas": [USER_SCHEMA], "userName": "carol", "displayName": "Carol Diaz",
            "emails": [{"value": "carol@example.com", "primary": True}],
            "roles": [{"value": "auditor"}]}).json()
        group = idp.post("/Groups", json={"schemas": [GROUP_SCHEMA],
                                          "displayName": "tabard-approver"}).json()
        patched = idp.patch(f"/Groups/{group['id']}", json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": carol["id"]}]}]})
        assert patched.status_code == 200, patched.text
    shown = _cli_json(platform, "users", "show", "CAROL")
    assert (shown["user_name"], shown["display_name"], shown["active"], shown["is_person"]) == (
        "carol", "Carol Diaz", True, True)
    assert shown["roles"] == ["approver", "auditor"] and shown["own_roles"] == ["auditor"]
    assert shown["groups"] == [{"id": group["id"], "name": "tabard-approver", "direct": True}]
    assert shown["emails"] == ["carol@example.com"]

    made = _cli_json(platform, "users", "create", "inbox", "--user-type", "shared-mailbox",
                     "--email", "team@example.com")
    assert made["is_person"] is False
    listed = {u["user_name"]: u for u in _cli_json(platform, "users", "list")}
    assert listed["carol"]["roles"] == ["approver", "auditor"]
    assert listed["inbox"]["is_person"] is False

    off = _cli_json(platform, "users", "deactivate", "carol")
    assert off["active"] is False
    assert scim.get(f"/Users/{carol['id']}").json()["active"] is False
    scim.patch(f"/Users/{carol['id']}", json={
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active",
                                               "value": True}]})
    assert _cli_json(platform, "users", "show", "carol")["active"] is True

    table = platform.cli("users", "show", "carol")
    assert table.returncode == 0 and "tabard-approver" in table.stdout, table.stderr
    assert "carol" in platform.cli("users", "list").stdout
    human = platform.cli("scim", "token", "create", "--name", "shown-once")
    assert human.returncode == 0, human.stderr
    assert sum(line.startswith("tabard_scim_") for line in human.stdout.splitlines()) == 1
    missing = platform.cli("users", "show", "nobody")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no user named")
    bad = platform.cli("users", "create", "dave", "--email", "not-an-email")
    assert bad.returncode == 2 and "email" in bad.stderr


@pytest.mark.parametrize("command", [
    ["users", "list"], ["users", "show"], ["users", "create"], ["users", "deactivate"],
    ["users", "activate"], ["scim", "token", "create"], ["scim", "token", "list"],
    ["scim", "token", "revoke"],
], ids=" ".join)
def test_every_directory_command_has_help_with_an_example(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout
