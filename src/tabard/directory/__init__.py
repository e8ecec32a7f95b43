"""The humans and administrators tabard answers to: admin API credentials, and the directory
of people (users, groups, roles) that identity providers provision over SCIM 2.0."""

from tabard.directory.admin_tokens import (
    TOKEN_PREFIX,
    AdminPrincipal,
    AdminTokenRecord,
    AdminTokenService,
    AdminTokenStore,
    IssuedAdminToken,
)

__all__ = [
    "TOKEN_PREFIX",
    "AdminPrincipal",
    "AdminTokenRecord",
    "AdminTokenService",
    "AdminTokenStore",
    "IssuedAdminToken",
]

from tabard.directory.errors import (
    DirectoryNotFoundError,
    DuplicateGroupError,
    DuplicateUserError,
    GroupNotFoundError,
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
    UserNotFoundError,
)
from tabard.directory.facade import Directory
from tabard.directory.model import (
    NON_PERSON_USER_TYPES,
    ROLE_GROUP_PREFIX,
    DirectoryGroup,
    DirectoryUser,
    Member,
    MemberRef,
    Membership,
    Person,
    UserDetails,
    is_person_user_type,
    name_key,
    role_of_group,
)
from tabard.directory.ports import GroupStore, UserStatusListener, UserStore
from tabard.directory.scim import (
    SCIM_MEDIA_TYPE,
    ScimEndpoint,
    ScimResult,
    ScimService,
    parse_etag,
)
from tabard.directory.scim_tokens import (
    SCIM_TOKEN_PREFIX,
    IssuedScimToken,
    ScimClient,
    ScimTokenRecord,
    ScimTokenService,
    ScimTokenStore,
)
from tabard.directory.service import DirectoryService

__all__ += [
    "NON_PERSON_USER_TYPES",
    "ROLE_GROUP_PREFIX",
    "SCIM_MEDIA_TYPE",
    "SCIM_TOKEN_PREFIX",
    "Directory",
    "DirectoryGroup",
    "DirectoryNotFoundError",
    "DirectoryService",
    "DirectoryUser",
    "DuplicateGroupError",
    "DuplicateUserError",
    "GroupNotFoundError",
    "GroupStore",
    "InvalidFilterError",
    "InvalidPathError",
    "InvalidSyntaxError",
    "InvalidValueError",
    "InvalidVersionError",
    "IssuedScimToken",
    "Member",
    "MemberRef",
    "Membership",
    "MutabilityError",
    "NoTargetError",
    "NotSupportedError",
    "Person",
    "PreconditionFailedError",
    "ScimClient",
    "ScimEndpoint",
    "ScimResult",
    "ScimService",
    "ScimTokenRecord",
    "ScimTokenService",
    "ScimTokenStore",
    "TooManyError",
    "UserDetails",
    "UserNotFoundError",
    "UserStatusListener",
    "UserStore",
    "is_person_user_type",
    "name_key",
    "parse_etag",
    "role_of_group",
]
