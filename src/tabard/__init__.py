"""tabard: identity platform for AI agents and every other non-human identity.

Each agent instance gets its own short-lived SPIFFE identity, each request is decided on the
blended identity (agent, user, delegation chain), and everything is recorded. See
``ARCHITECTURE.md`` for the design; this package's layers are enforced by import-linter.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
