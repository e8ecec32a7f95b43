"""The SCIM 2.0 service provider: RFC 7643 resources and RFC 7644 operations over the directory.

https://www.rfc-editor.org/rfc/rfc7644 — the protocol; https://www.rfc-editor.org/rfc/rfc7643
— the schemas. Payloads are validated, filtered, patched and rendered with ``scim2-models``
(the models of RFC 7643 §8.7, the filter grammar of RFC 7644 §3.4.2.2, the PATCH semantics of
§3.5.2); this module keeps the protocol rules that concern the service provider: ids, ``meta``,
versions, paging, members that must exist, and a user's ``groups``.

Every operation returns a :class:`ScimResult` (status, JSON body, ETag, Location); a client
error raises one of :mod:`tabard.directory.errors`, whose code names the ``scimType``. Deviations
from RFC 7644, all optional features: no bulk (§3.7), no sorting (§3.4.2.3), no password
changes (a password is accepted and discarded: tabard stores none).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NoReturn, TypeVar, cast

from pydantic import ValidationError
from scim2_models import (
    AuthenticationScheme,
    BaseModel,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    Error,
    ETag,
    External,
    Filter,
    Group,
    GroupMember,
    GroupMembership,
    Meta,
    Patch,
    PatchOp,
    Reference,
    Resource,
    ResourceType,
    ResponseParameters,
    Schema,
    SCIMException,
    ScimPolicy,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    User,
)

from tabard.directory.errors import (
    DirectoryNotFoundError,
    InvalidFilterError,
    InvalidPathError,
    InvalidSyntaxError,
    InvalidValueError,
    InvalidVersionError,
    MutabilityError,
    NoTargetError,
    NotSupportedError,
    PreconditionFailedError,
    TooManyError,
)
from tabard.directory.model import DirectoryGroup, DirectoryUser, MemberRef, Membership
from tabard.directory.service import DirectoryService
from tabard.errors import Conflict, TabardError

__all__ = [
    "ERROR_SCHEMA",
    "LIST_RESPONSE_SCHEMA",
    "SCIM_MEDIA_TYPE",
    "ScimEndpoint",
    "ScimResult",
    "ScimService",
    "parse_etag",
]

SCIM_MEDIA_TYPE = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

ScimUser = User[EnterpriseUser]
_M = TypeVar("_M", bound=BaseModel)

POLICY = ScimPolicy(
    # RFC 7644 §3.3: what a service provider does not know it may ignore; identity providers
    # send attributes of their own.
    unknown=ScimPolicy.Unknown.ignore,
    # interoperability with providers that name the value to remove, or add through a
    # filter that matches nothing yet (members[value eq "..."]).
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)

_ETAG = re.compile(r'^(?:W/)?"(\d{1,18})"$')


class ScimEndpoint(Enum):
    """The resource endpoints (RFC 7644 §3.2)."""

    USERS = "Users"
    GROUPS = "Groups"

    @property
    def resource_type(self) -> str:
        return "User" if self is ScimEndpoint.USERS else "Group"


@dataclass(frozen=True, slots=True)
class ScimResult:
    """A response: status, JSON body (None for 204/304), ``ETag`` and ``Location`` headers."""

    status: int
    body: dict[str, Any] | None = None
    etag: str | None = None
    location: str | None = None


def parse_etag(value: str | None) -> int | None:
    """The version an ``If-Match``/``If-None-Match`` names; None for absent or ``*``.
    Anything else cannot match any version tabard issues."""
    if value is None or value.strip() in ("", "*"):
        return None
    match = _ETAG.match(value.strip())
    if match is None:
        raise PreconditionFailedError("the resource is not at the version named")
    return int(match.group(1))


def _external(uri: str) -> Any:
    return Reference[External](uri)


def _etag(version: int) -> str:
    return f'W/"{version}"'


_BY_SCIM_TYPE: dict[str, type[TabardError]] = {
    "invalidFilter": InvalidFilterError,
    "invalidSyntax": InvalidSyntaxError,
    "invalidPath": InvalidPathError,
    "noTarget": NoTargetError,
    "invalidValue": InvalidValueError,
    "mutability": MutabilityError,
    "tooMany": TooManyError,
    "invalidVers": InvalidVersionError,
    "uniqueness": Conflict,
}
_BY_STATUS: dict[int, type[TabardError]] = {
    404: DirectoryNotFoundError, 409: Conflict, 412: PreconditionFailedError,
    501: NotSupportedError,
}


def _raise_scim(scim_type: str | None, status: int | None, detail: str) -> NoReturn:
    cls = _BY_SCIM_TYPE.get(scim_type or "") or _BY_STATUS.get(status or 0) or InvalidValueError
    raise cls(detail or "the request is not valid")


def _translate(exc: Exception) -> NoReturn:
    """Raise the tabard error for a ``scim2-models`` validation or protocol exception."""
    if isinstance(exc, ValidationError):
        errors = Error.from_validation_errors(exc)
        first = errors[0] if errors else Error(status=400, scim_type="invalidValue")
        _raise_scim(first.scim_type, first.status, first.detail or "")
    if isinstance(exc, SCIMException):
        _raise_scim(exc.scim_type or None, exc.status, exc.detail)
    raise exc


def _validate(model: type[_M], body: Any, context: Context) -> _M:
    if not isinstance(body, Mapping):
        raise InvalidSyntaxError("the request body must be a JSON object")
    try:
        return model.model_validate(dict(body), scim_ctx=context, scim_policy=POLICY)
    except (ValidationError, SCIMException) as exc:
        _translate(exc)


def _document(resource: Resource[Any]) -> dict[str, Any]:
    """The attributes a client controls, as stored (the directory drops the provider's)."""
    return resource.model_dump(scim_ctx=Context.DEFAULT, scim_policy=POLICY)


_QUERY_PARAMETERS = {name.lower(): name for name in (
    "filter", "startIndex", "count", "attributes", "excludedAttributes", "sortBy", "sortOrder")}


class ScimService:
    """The SCIM 2.0 endpoints of tabard's directory. ``base`` arguments are the absolute URL
    of ``/scim/v2`` as the client reached it: it prefixes every ``location`` and ``$ref``."""

    def __init__(self, directory: DirectoryService, *, max_results: int = 1000) -> None:
        self._directory = directory
        self._max_results = max_results

    # --- discovery (RFC 7644 §4) ---------------------------------------------------------

    def service_provider_config(self, base: str) -> ScimResult:
        config = ServiceProviderConfig(
            documentation_uri=_external("https://www.rfc-editor.org/rfc/rfc7644"),
            patch=Patch(supported=True),
            bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
            filter=Filter(supported=True, max_results=self._max_results),
            change_password=ChangePassword(supported=False),
            sort=Sort(supported=False),
            etag=ETag(supported=True),
            authentication_schemes=[AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Bearer token",
                description="Authorization: Bearer <SCIM token from `tabard scim token create`>",
                spec_uri=_external("https://www.rfc-editor.org/rfc/rfc6750"),
                primary=True,
            )],
            meta=Meta(resource_type="ServiceProviderConfig",
                      location=f"{base}/ServiceProviderConfig"),
        )
        return ScimResult(200, config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))

    def _resource_types(self, base: str) -> list[ResourceType]:
        types = []
        for model, description in ((ScimUser, "People, provisioned by an identity provider"),
                                   (Group, "Groups of users and groups; tabard-<role> "
                                           "grants <role>")):
            resource_type = ResourceType.from_resource(model)
            resource_type.description = description
            resource_type.meta = Meta(resource_type="ResourceType",
                                      location=f"{base}/ResourceTypes/{resource_type.id}")
            types.append(resource_type)
        return types

    def resource_types(self, base: str) -> ScimResult:
        return ScimResult(200, self._list_body(
            [t.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
             for t in self._resource_types(base)]))

    def resource_type(self, base: str, type_id: str) -> ScimResult:
        for resource_type in self._resource_types(base):
            if resource_type.id == type_id:
                return ScimResult(200, resource_type.model_dump(
                    scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        raise DirectoryNotFoundError(f"no resource type {type_id!r}")

    def _schemas(self, base: str) -> list[Schema]:
        schemas = []
        for model in (User, EnterpriseUser, Group, ResourceType, ServiceProviderConfig, Schema):
            schema = model.to_schema()
            schema.meta = Meta(resource_type="Schema", location=f"{base}/Schemas/{schema.id}")
            schemas.append(schema)
        return schemas

    def schemas(self, base: str) -> ScimResult:
        return ScimResult(200, self._list_body(
            [s.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE) for s in self._schemas(base)]))

    def schema(self, base: str, schema_id: str) -> ScimResult:
        for schema in self._schemas(base):
            if schema.id == schema_id:
                return ScimResult(200, schema.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        raise DirectoryNotFoundError(f"no schema {schema_id!r}")

    # --- resources (RFC 7644 §3) ----------------------------------------------------------

    def create(self, endpoint: ScimEndpoint, body: Any, base: str,
               query: Mapping[str, str] | None = None) -> ScimResult:
        """POST (§3.3): 201 with the resource, its ``Location`` and ``ETag``."""
        parameters = self._response_parameters(endpoint, query)
        if endpoint is ScimEndpoint.USERS:
            user = self._directory.create_user(
                _document(_validate(ScimUser, body, Context.RESOURCE_CREATION_REQUEST)))
            return self._user_result(user, base, 201, parameters,
                                     Context.RESOURCE_CREATION_RESPONSE)
        group_model = _validate(Group, body, Context.RESOURCE_CREATION_REQUEST)
        group = self._directory.create_group(*self._group_input(group_model))
        return self._group_result(group, base, 201, parameters, Context.RESOURCE_CREATION_RESPONSE)

    def add_user(self, user_name: str, *, display_name: str | None = None,
                 emails: Sequence[str] = (), roles: Sequence[str] = (),
                 user_type: str | None = None, active: bool = True) -> DirectoryUser:
        """A user made by tabard itself (``tabard users create``) rather than an identity
        provider: the SCIM document a provider would send, validated the same way."""
        body: dict[str, Any] = {"schemas": [User.__schema__], "userName": user_name,
                                "active": active}
        if display_name:
            body["displayName"] = display_name
        if emails:
            body["emails"] = [{"value": e, "primary": i == 0} for i, e in enumerate(emails)]
        if roles:
            body["roles"] = [{"value": r} for r in roles]
        if user_type:
            body["userType"] = user_type
        return self._directory.create_user(
            _document(_validate(ScimUser, body, Context.RESOURCE_CREATION_REQUEST)))

    def get(self, endpoint: ScimEndpoint, resource_id: str, base: str,
            query: Mapping[str, str] | None = None, *,
            if_none_match: str | None = None) -> ScimResult:
        """GET by id (§3.4.1); 304 when ``If-None-Match`` names the current version."""
        parameters = self._response_parameters(endpoint, query)
        if endpoint is ScimEndpoint.USERS:
            user = self._directory.get_user(resource_id)
            if self._unchanged(if_none_match, user.version):
                return ScimResult(304, etag=_etag(user.version))
            return self._user_result(user, base, 200, parameters)
        group = self._directory.get_group(resource_id)
        if self._unchanged(if_none_match, group.version):
            return ScimResult(304, etag=_etag(group.version))
        return self._group_result(group, base, 200, parameters)

    @staticmethod
    def _unchanged(if_none_match: str | None, version: int) -> bool:
        if if_none_match is None:
            return False
        if if_none_match.strip() == "*":
            return True
        try:
            return parse_etag(if_none_match) == version
        except PreconditionFailedError:
            return False

    def list_resources(self, endpoint: ScimEndpoint, base: str,
             query: Mapping[str, str] | None = None) -> ScimResult:
        """GET on the endpoint (§3.4.2): filter, paging, attribute selection."""
        request = self._search_request(endpoint, self._query_body(query))
        return ScimResult(200, self._search(endpoint, request, base))

    def search(self, endpoint: ScimEndpoint | None, body: Any, base: str) -> ScimResult:
        """POST ``.search`` (§3.4.3) on an endpoint, or on the root for every resource type."""
        if not isinstance(body, Mapping):
            raise InvalidSyntaxError("the request body must be a JSON object")
        request = self._search_request(endpoint, body)
        return ScimResult(200, self._search(endpoint, request, base))

    def replace(self, endpoint: ScimEndpoint, resource_id: str, body: Any, base: str,
                query: Mapping[str, str] | None = None, *,
                if_match: str | None = None) -> ScimResult:
        """PUT (§3.5.1): the resource as sent, read-only attributes kept, immutable checked."""
        parameters = self._response_parameters(endpoint, query)
        version = parse_etag(if_match)
        if endpoint is ScimEndpoint.USERS:
            sent_user = _validate(ScimUser, body, Context.RESOURCE_REPLACEMENT_REQUEST)

            def replace_user(current: DirectoryUser) -> Mapping[str, Any]:
                replacement = sent_user.model_copy(deep=True)
                self._apply(lambda: replacement.replace(self._user_model(current, base)))
                return _document(replacement)

            user = self._directory.update_user(resource_id, replace_user, if_match=version)
            return self._user_result(user, base, 200, parameters,
                                     Context.RESOURCE_REPLACEMENT_RESPONSE)
        sent_group = _validate(Group, body, Context.RESOURCE_REPLACEMENT_REQUEST)

        def replace_group(current: DirectoryGroup
                          ) -> tuple[Mapping[str, Any], Sequence[MemberRef]]:
            replacement = sent_group.model_copy(deep=True)
            self._apply(lambda: replacement.replace(self._group_model(current, base)))
            return self._group_input(replacement)

        group = self._directory.update_group(resource_id, replace_group, if_match=version)
        return self._group_result(group, base, 200, parameters,
                                  Context.RESOURCE_REPLACEMENT_RESPONSE)

    def patch(self, endpoint: ScimEndpoint, resource_id: str, body: Any, base: str,
              query: Mapping[str, str] | None = None, *,
              if_match: str | None = None) -> ScimResult:
        """PATCH (§3.5.2): the operations applied atomically; 200 with the resource."""
        parameters = self._response_parameters(endpoint, query)
        version = parse_etag(if_match)
        if endpoint is ScimEndpoint.USERS:
            user_ops = _validate(PatchOp[ScimUser], body, Context.RESOURCE_PATCH_REQUEST)

            def patch_user(current: DirectoryUser) -> Mapping[str, Any]:
                model = self._user_model(current, base)
                self._apply(lambda: user_ops.patch(model, scim_policy=POLICY))
                return _document(model)

            user = self._directory.update_user(resource_id, patch_user, if_match=version)
            return self._user_result(user, base, 200, parameters, Context.RESOURCE_PATCH_RESPONSE)
        group_ops = _validate(PatchOp[Group], body, Context.RESOURCE_PATCH_REQUEST)

        def patch_group(current: DirectoryGroup
                        ) -> tuple[Mapping[str, Any], Sequence[MemberRef]]:
            model = self._group_model(current, base)
            self._apply(lambda: group_ops.patch(model, scim_policy=POLICY))
            return self._group_input(model)

        group = self._directory.update_group(resource_id, patch_group, if_match=version)
        return self._group_result(group, base, 200, parameters, Context.RESOURCE_PATCH_RESPONSE)

    def delete(self, endpoint: ScimEndpoint, resource_id: str, *,
               if_match: str | None = None) -> ScimResult:
        """DELETE (§3.6): 204; the resource is gone for every later request."""
        version = parse_etag(if_match)
        if endpoint is ScimEndpoint.USERS:
            self._directory.delete_user(resource_id, if_match=version)
        else:
            self._directory.delete_group(resource_id, if_match=version)
        return ScimResult(204)

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def _apply(operation: Callable[[], object]) -> None:
        try:
            operation()
        except (ValidationError, SCIMException) as exc:
            _translate(exc)

    @staticmethod
    def _query_body(query: Mapping[str, str] | None) -> dict[str, str]:
        return {_QUERY_PARAMETERS[k.lower()]: v for k, v in (query or {}).items()
                if k.lower() in _QUERY_PARAMETERS}

    def _response_parameters(self, endpoint: ScimEndpoint,
                             query: Mapping[str, str] | None) -> ResponseParameters[Any]:
        wanted = {k: v for k, v in self._query_body(query).items()
                  if k in ("attributes", "excludedAttributes")}
        model: Any = ResponseParameters[ScimUser] if endpoint is ScimEndpoint.USERS \
            else ResponseParameters[Group]
        try:
            return cast(ResponseParameters[Any],
                        model.model_validate(wanted, scim_ctx=Context.RESOURCE_QUERY_REQUEST,
                                             scim_policy=POLICY))
        except (ValidationError, SCIMException) as exc:
            _translate(exc)

    def _search_request(self, endpoint: ScimEndpoint | None,
                        body: Mapping[str, Any]) -> SearchRequest[Any]:
        model: Any
        if endpoint is ScimEndpoint.USERS:
            model = SearchRequest[ScimUser]
        elif endpoint is ScimEndpoint.GROUPS:
            model = SearchRequest[Group]
        else:
            model = SearchRequest[ScimUser | Group]
        payload = dict(body)
        payload.setdefault("schemas", [str(SearchRequest.__schema__)])
        try:
            return cast(SearchRequest[Any],
                        model.model_validate(payload, scim_ctx=Context.SEARCH_REQUEST,
                                             scim_policy=POLICY))
        except (ValidationError, SCIMException) as exc:
            _translate(exc)

    def _search(self, endpoint: ScimEndpoint | None, request: SearchRequest[Any],
                base: str) -> dict[str, Any]:
        memberships = self._directory.membership_resolver()
        resources: list[Resource[Any]] = []
        if endpoint in (ScimEndpoint.USERS, None):
            resources.extend(self._user_model(u, base, memberships(u.id))
                             for u in self._user_candidates(request))
        if endpoint in (ScimEndpoint.GROUPS, None):
            resources.extend(self._group_model(g, base) for g in self._group_candidates(request))
        if request.filter is not None:
            scim_filter = request.filter
            try:
                resources = [r for r in resources if scim_filter.match(r)]
            except (ValidationError, SCIMException) as exc:
                _translate(exc)
        start = max(1, request.start_index or 1)
        count = self._max_results if request.count is None else max(0, request.count)
        page = resources[start - 1:start - 1 + min(count, self._max_results)]
        dumped = [r.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=request,
                               scim_policy=POLICY) for r in page]
        return {**self._list_body(dumped), "totalResults": len(resources), "startIndex": start}

    def _user_candidates(self, request: SearchRequest[Any]) -> list[DirectoryUser]:
        """Every user, or the one a plain ``userName eq "..."`` filter names (the lookup an
        identity provider makes before each provisioning call)."""
        value = _eq_value(request, "username")
        if value is not None:
            user = self._directory.find_user(value)
            return [user] if user is not None else []
        return self._directory.list_users()

    def _group_candidates(self, request: SearchRequest[Any]) -> list[DirectoryGroup]:
        value = _eq_value(request, "displayname")
        if value is not None:
            group = self._directory.find_group(value)
            return [group] if group is not None else []
        return self._directory.list_groups()

    @staticmethod
    def _list_body(resources: list[dict[str, Any]]) -> dict[str, Any]:
        return {"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": len(resources),
                "startIndex": 1, "itemsPerPage": len(resources), "Resources": resources}

    def _meta(self, kind: str, resource_id: str, created: Any, modified: Any, version: int,
              base: str) -> Meta:
        return Meta(resource_type=kind, created=created, last_modified=modified,
                    location=f"{base}/{kind}s/{resource_id}", version=_etag(version))

    def _user_model(self, user: DirectoryUser, base: str,
                    memberships: Sequence[Membership] | None = None) -> ScimUser:
        model = _validate(ScimUser, user.attributes, Context.DEFAULT)
        model.id = user.id
        model.meta = self._meta("User", user.id, user.created_at, user.updated_at,
                                user.version, base)
        found = self._directory.memberships(user.id) if memberships is None else memberships
        model.groups = [
            GroupMembership.model_validate({
                "value": m.group.id, "$ref": f"{base}/Groups/{m.group.id}",
                "display": m.group.display_name, "type": "direct" if m.direct else "indirect"})
            for m in found
        ] or None
        return model

    def _group_model(self, group: DirectoryGroup, base: str) -> Group:
        model = _validate(Group, group.attributes, Context.DEFAULT)
        model.id = group.id
        model.meta = self._meta("Group", group.id, group.created_at, group.updated_at,
                                group.version, base)
        model.members = [
            GroupMember.model_validate({"value": m.value, "$ref": f"{base}/{m.type}s/{m.value}",
                                        "type": m.type, "display": m.display})
            for m in group.members
        ] or None
        return model

    @staticmethod
    def _group_input(model: Group) -> tuple[dict[str, Any], list[MemberRef]]:
        refs = []
        for member in model.members or []:
            value = member.value
            if not value and member.ref:
                value = str(member.ref).rstrip("/").rsplit("/", 1)[-1]
            refs.append(MemberRef(value or "", member.type, member.display))
        return _document(model), refs

    def _user_result(self, user: DirectoryUser, base: str, status: int,
                     parameters: ResponseParameters[Any],
                     context: Context = Context.RESOURCE_QUERY_RESPONSE) -> ScimResult:
        model = self._user_model(user, base)
        body = model.model_dump(scim_ctx=context, response_parameters=parameters,
                                scim_policy=POLICY)
        return ScimResult(status, body, _etag(user.version), f"{base}/Users/{user.id}")

    def _group_result(self, group: DirectoryGroup, base: str, status: int,
                      parameters: ResponseParameters[Any],
                      context: Context = Context.RESOURCE_QUERY_RESPONSE) -> ScimResult:
        model = self._group_model(group, base)
        body = model.model_dump(scim_ctx=context, response_parameters=parameters,
                                scim_policy=POLICY)
        return ScimResult(status, body, _etag(group.version), f"{base}/Groups/{group.id}")


def _eq_value(request: SearchRequest[Any], attribute: str) -> str | None:
    """The value of a filter that is exactly ``<attribute> eq "<string>"``, else None."""
    if request.filter is None:
        return None
    node: Any = request.filter.ast
    path = getattr(node, "attr_path", None)
    if (type(node).__name__ == "Comparison" and str(getattr(node, "op", "")) == "eq"
            and path is not None and path.attr.lower() == attribute and path.sub_attr is None
            and path.uri in (None, str(User.__schema__), str(Group.__schema__))
            and isinstance(node.value, str)):
        return str(node.value)
    return None

