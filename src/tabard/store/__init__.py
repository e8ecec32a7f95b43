"""Storage: SQLAlchemy engine, tables, Alembic migrations and the SQL adapters of the
domain ports (SQLite by default, PostgreSQL via ``TABARD_DATABASE_URL``). ORM and Core
objects never leave this package: adapters return the domain's own dataclasses."""

from tabard.store.admin_tokens import SqlAdminTokenStore
from tabard.store.authority import SqlAuthorityStore
from tabard.store.db import Database, normalize_url
from tabard.store.join_tokens import SqlJoinTokenStore
from tabard.store.registry import SqlEntryStore, SqlInstanceStore, SqlNodeStore

__all__ = [
    "Database",
    "SqlAdminTokenStore",
    "SqlAuthorityStore",
    "SqlEntryStore",
    "SqlInstanceStore",
    "SqlJoinTokenStore",
    "SqlNodeStore",
    "normalize_url",
]

from tabard.store.inventory import SqlInventoryStore

__all__ += ["SqlInventoryStore"]

from tabard.store.admin_tokens import SqlScimTokenStore  # noqa: E402
from tabard.store.directory import SqlGroupStore, SqlUserStore  # noqa: E402

__all__ += ["SqlGroupStore", "SqlScimTokenStore", "SqlUserStore"]

from tabard.store.agents import (  # noqa: E402
    SqlAgentActivity,
    SqlAgentStore,
    SqlFindingStore,
    SqlResidualUseStore,
)

__all__ += ["SqlAgentActivity", "SqlAgentStore", "SqlFindingStore", "SqlResidualUseStore"]

from tabard.store.oauth import SqlOAuthClientStore, SqlOAuthTokenStore  # noqa: E402

__all__ += ["SqlOAuthClientStore", "SqlOAuthTokenStore"]
from tabard.store.policies import SqlPolicyStore  # noqa: E402

__all__ += ["SqlPolicyStore"]
from tabard.store.vault import SqlLeaseStore, SqlSecretStore  # noqa: E402

__all__ += ["SqlLeaseStore", "SqlSecretStore"]
from tabard.store.audit import SqlAuditStore  # noqa: E402

__all__ += ["SqlAuditStore"]
from tabard.store.gateway import SqlApprovalStore, SqlRouteStore  # noqa: E402

__all__ += ["SqlApprovalStore", "SqlRouteStore"]

from tabard.store.signals import PgSignalListener, SqlSignalStore  # noqa: E402

__all__ += ["PgSignalListener", "SqlSignalStore"]
