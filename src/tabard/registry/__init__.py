"""The registry: registration entries, nodes and agent instances.

Entries map selectors to a SPIFFE ID or an ``{instance}`` template (:mod:`.entries`,
:mod:`.selectors`); nodes attest through :mod:`tabard.attestation` plugins (:mod:`.nodes`);
every process of a template entry is an agent instance with an ID of its own
(:mod:`.instances`). :mod:`.services` holds the use cases, :mod:`.ports` what they need.
"""

from tabard.registry.entries import (
    INSTANCE_PLACEHOLDER,
    RESERVED_SEGMENTS,
    Entry,
    EntryLimits,
    EntryPatch,
    EntrySpec,
    IdTemplate,
    ValidEntry,
    validate_spec,
)
from tabard.registry.errors import (
    DuplicateEntryError,
    EntryNotFoundError,
    InstanceNotFoundError,
    InvalidEntryError,
    InvalidInstanceError,
    InvalidSelectorError,
    NodeBannedError,
    NodeNotFoundError,
    NodeUnauthenticatedError,
    NotATemplateError,
    NotYourEntryError,
    SelectorMismatchError,
)
from tabard.registry.instances import (
    AgentInstance,
    InstanceQuery,
    InstanceReport,
    Registration,
    is_ulid,
    new_ulid,
)
from tabard.registry.nodes import (
    NodePrincipal,
    NodeRecord,
    node_id_from_spiffe_id,
    node_spiffe_id,
)
from tabard.registry.ports import EntryStore, InstanceStore, NodeStore, SvidMinter
from tabard.registry.selectors import Selector, matches, parse_selectors
from tabard.registry.services import (
    MAX_AUDIENCES,
    MAX_SVID_REQUESTS,
    EntryService,
    EntrySvidService,
    InstanceService,
    IssuedJwtSvid,
    IssuedX509Svid,
    NodeService,
    NodeSvid,
    X509SvidRequest,
)

__all__ = [
    "INSTANCE_PLACEHOLDER",
    "MAX_AUDIENCES",
    "MAX_SVID_REQUESTS",
    "RESERVED_SEGMENTS",
    "AgentInstance",
    "DuplicateEntryError",
    "Entry",
    "EntryLimits",
    "EntryNotFoundError",
    "EntryPatch",
    "EntryService",
    "EntrySpec",
    "EntryStore",
    "EntrySvidService",
    "IdTemplate",
    "InstanceNotFoundError",
    "InstanceQuery",
    "InstanceReport",
    "InstanceService",
    "InstanceStore",
    "InvalidEntryError",
    "InvalidInstanceError",
    "InvalidSelectorError",
    "IssuedJwtSvid",
    "IssuedX509Svid",
    "NodeBannedError",
    "NodeNotFoundError",
    "NodePrincipal",
    "NodeRecord",
    "NodeService",
    "NodeStore",
    "NodeSvid",
    "NodeUnauthenticatedError",
    "NotATemplateError",
    "NotYourEntryError",
    "Registration",
    "Selector",
    "SelectorMismatchError",
    "SvidMinter",
    "ValidEntry",
    "X509SvidRequest",
    "is_ulid",
    "matches",
    "new_ulid",
    "node_id_from_spiffe_id",
    "node_spiffe_id",
    "parse_selectors",
    "validate_spec",
]
