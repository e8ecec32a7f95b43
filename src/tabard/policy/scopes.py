"""OAuth scopes as tabard reads them: what a hop of a delegation chain may do.

A scope (RFC 6749 §3.3) is a space-delimited set of tokens. tabard gives meaning to tokens of
the form ``<kind>:<pattern>``, where ``kind`` names a family of operations and ``pattern`` is
a glob in which ``*`` matches any run of characters:

=============  ===========================================  ==============================
kind           operation it grants                          example
=============  ===========================================  ==============================
``tools``      MCP ``tools/call`` of a tool                 ``tools:jira.*``
``resources``  MCP ``resources/read`` of a resource URI     ``resources:file:///docs/*``
``prompts``    MCP ``prompts/get`` of a prompt              ``prompts:triage``
``a2a``        any A2A method on a target agent             ``a2a:billing-agent``
``http``       an HTTP method on a route path               ``http:GET:/repos/*``
=============  ===========================================  ==============================

Any other token (``openid``, ``files.read``) is opaque: it is carried and compared by
equality but grants no operation. A hop with no ``scope`` at all is *unrestricted*: only the
policies and the other hops limit it.

Narrowing is language inclusion: token ``a`` covers ``b`` when every operation ``b`` grants,
``a`` grants too. With ``*`` as the only wildcard, that holds exactly when ``a``'s pattern
matches ``b``'s pattern read as a literal string (``a``'s literal characters are never ``*``,
so each ``*`` of ``b`` falls inside a ``*`` of ``a``, which absorbs any expansion). Written by
hand because no OAuth library gives scopes an operation grammar.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from tabard.errors import Invalid

__all__ = [
    "MAX_SCOPE_TOKENS",
    "OperationKind",
    "Scope",
    "ScopeError",
    "operation_token",
]

MAX_SCOPE_TOKENS = 256
_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,512}")  # RFC 6749 §3.3 scope-token


class ScopeError(Invalid):
    """A malformed scope, or one wider than the scope it must stay inside."""

    code = "invalid_scope"


class OperationKind(StrEnum):
    TOOLS = "tools"
    RESOURCES = "resources"
    PROMPTS = "prompts"
    A2A = "a2a"
    HTTP = "http"


_KINDS = frozenset(k.value for k in OperationKind)


def operation_token(kind: OperationKind | str, name: str) -> str:
    """The token an operation needs: ``tools:jira.create_issue``, ``http:GET:/repos/x``."""
    return f"{OperationKind(kind).value}:{name}"


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _split(token: str) -> tuple[str, str] | None:
    kind, sep, pattern = token.partition(":")
    if sep and kind in _KINDS and pattern:
        return kind, pattern
    return None


def _covers(granted: str, wanted: str) -> bool:
    if granted == wanted:
        return True
    g, w = _split(granted), _split(wanted)
    if g is None or w is None or g[0] != w[0]:
        return False
    return _glob(g[1]).fullmatch(w[1]) is not None


@dataclass(frozen=True, slots=True)
class Scope:
    """An immutable scope; ``tokens is None`` means unrestricted (no ``scope`` given)."""

    tokens: frozenset[str] | None

    @classmethod
    def unrestricted(cls) -> Scope:
        return cls(None)

    @classmethod
    def parse(cls, text: str | None) -> Scope:
        """A ``scope`` parameter or claim; ``None`` is unrestricted, ``""`` grants nothing."""
        if text is None:
            return cls(None)
        if not isinstance(text, str):
            raise ScopeError("scope must be a space-delimited string")
        return cls.of(text.split())

    @classmethod
    def of(cls, tokens: Iterable[str]) -> Scope:
        out: set[str] = set()
        for token in tokens:
            if not isinstance(token, str) or not _TOKEN.fullmatch(token):
                raise ScopeError(f"scope token {token!r} has characters RFC 6749 does not allow")
            out.add(token)
        if len(out) > MAX_SCOPE_TOKENS:
            raise ScopeError(f"a scope has at most {MAX_SCOPE_TOKENS} tokens")
        return cls(frozenset(out))

    @property
    def restricted(self) -> bool:
        return self.tokens is not None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.tokens or ()))

    def __str__(self) -> str:
        return " ".join(self)

    def claim(self) -> str | None:
        """The ``scope`` claim to write: ``None`` when unrestricted."""
        return None if self.tokens is None else str(self)

    def allows(self, needed: str) -> bool:
        """Whether the operation token ``needed`` lies inside this scope."""
        if self.tokens is None:
            return True
        return any(_covers(t, needed) for t in self.tokens)

    def covers(self, other: Scope) -> bool:
        """Whether everything ``other`` grants, this scope grants too."""
        if self.tokens is None:
            return True
        if other.tokens is None:
            return False
        return all(self.allows(t) for t in other.tokens)

    def narrow(self, requested: Scope) -> Scope:
        """The scope of the next hop: ``requested`` if this one covers it, else
        :class:`ScopeError` naming the tokens that would widen it. Unrequested keeps this."""
        if requested.tokens is None:
            return self
        wider = sorted(t for t in requested.tokens if not self.allows(t))
        if wider:
            raise ScopeError(f"requested scope is wider than the delegated scope: "
                             f"{' '.join(wider)}")
        return requested

    def intersect(self, other: Scope) -> Scope:
        """Tokens granted by both: each token of one kept where the other covers it."""
        if self.tokens is None:
            return other
        if other.tokens is None:
            return self
        kept = {t for t in self.tokens if other.allows(t)}
        kept |= {t for t in other.tokens if self.allows(t)}
        return Scope(frozenset(kept))
