"""Errors of the registry: one class per rule, each with a stable ``code``."""

from __future__ import annotations

from tabard.errors import Conflict, Denied, Invalid, NotFound, Unauthenticated

__all__ = [
    "DuplicateEntryError",
    "EntryNotFoundError",
    "InstanceNotFoundError",
    "InvalidEntryError",
    "InvalidInstanceError",
    "InvalidSelectorError",
    "NodeBannedError",
    "NodeNotFoundError",
    "NodeUnauthenticatedError",
    "NotATemplateError",
    "NotYourEntryError",
    "SelectorMismatchError",
]


class InvalidSelectorError(Invalid):
    """A selector that is not ``type:value`` or breaks the rules of its known type."""

    code = "invalid_selector"


class InvalidEntryError(Invalid):
    """A registration entry field that breaks a rule; the message names the field."""

    code = "invalid_entry"


class DuplicateEntryError(Conflict):
    """An entry with the same SPIFFE ID, parent and selector set exists already."""

    code = "duplicate_entry"


class EntryNotFoundError(NotFound):
    code = "entry_not_found"


class NodeNotFoundError(NotFound):
    code = "node_not_found"


class NodeUnauthenticatedError(Unauthenticated):
    """A node API call without the X509-SVID of a known, not banned node."""

    code = "node_unauthenticated"


class NodeBannedError(Denied):
    """A banned node tried to attest again with evidence that names it."""

    code = "node_banned"


class NotYourEntryError(Denied):
    """A node asked about an entry or instance that is not its own (node-api.md)."""

    code = "not_your_entry"


class InstanceNotFoundError(NotFound):
    code = "instance_not_found"


class InvalidInstanceError(Invalid):
    """Process evidence reported by a node that cannot be right (pid 0, relative path...)."""

    code = "invalid_instance"


class NotATemplateError(Invalid):
    """Instances exist only for entries whose SPIFFE ID is an ``{instance}`` template."""

    code = "not_a_template"


class SelectorMismatchError(Denied):
    """A reported process that does not show every selector of the entry it claims."""

    code = "selectors_mismatch"
