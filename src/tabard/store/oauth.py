"""SQL implementations of the authorization server's ports: issued tokens and clients."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from tabard.oauth.ports import IssuedToken, OAuthClient
from tabard.store.db import Database
from tabard.store.tables import oauth_clients, oauth_tokens

__all__ = ["SqlOAuthClientStore", "SqlOAuthTokenStore"]


def _token(row: Any) -> IssuedToken:
    return IssuedToken(
        jti=row.jti, subject=row.subject, client_id=row.client_id,
        audience=tuple(row.audience), scope=row.scope, act=row.act, checksum=row.checksum,
        parent_jti=row.parent_jti, issued_at=row.issued_at, expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class SqlOAuthTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, record: IssuedToken) -> None:
        with self._db.begin() as c:
            c.execute(insert(oauth_tokens).values(
                jti=record.jti, subject=record.subject, client_id=record.client_id,
                audience=list(record.audience), scope=record.scope,
                act=dict(record.act) if record.act is not None else None,
                checksum=record.checksum, parent_jti=record.parent_jti,
                issued_at=record.issued_at, expires_at=record.expires_at,
                revoked_at=record.revoked_at))

    def get(self, jti: str) -> IssuedToken | None:
        with self._db.connect() as c:
            row = c.execute(select(oauth_tokens).where(oauth_tokens.c.jti == jti)).first()
        return _token(row) if row else None

    def revoke_tree(self, jti: str, at: datetime) -> int:
        """Breadth first down ``parent_jti`` in one transaction; an already revoked token
        still has its descendants revoked (they may have been exchanged before)."""
        revoked = 0
        with self._db.begin() as c:
            frontier = [jti] if c.execute(
                select(oauth_tokens.c.jti).where(oauth_tokens.c.jti == jti)).first() else []
            seen: set[str] = set()
            while frontier:
                batch = [j for j in frontier if j not in seen][:500]
                rest = [j for j in frontier if j not in seen][500:]
                seen.update(batch)
                result = c.execute(update(oauth_tokens).where(
                    oauth_tokens.c.jti.in_(batch), oauth_tokens.c.revoked_at.is_(None),
                ).values(revoked_at=at))
                revoked += result.rowcount
                children = c.execute(select(oauth_tokens.c.jti).where(
                    oauth_tokens.c.parent_jti.in_(batch))).scalars().all()
                frontier = rest + [j for j in children if j not in seen]
        return revoked


def _client(row: Any) -> OAuthClient:
    return OAuthClient(
        client_id=row.client_id, client_name=row.client_name, auth_method=row.auth_method,
        grant_types=tuple(row.grant_types), scope=row.scope, jwks=row.jwks,
        created_at=row.created_at, software_id=row.software_id,
        software_version=row.software_version,
    )


class SqlOAuthClientStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, client: OAuthClient) -> None:
        values = dict(
            client_name=client.client_name, auth_method=client.auth_method,
            grant_types=list(client.grant_types), scope=client.scope,
            jwks=dict(client.jwks) if client.jwks is not None else None,
            software_id=client.software_id, software_version=client.software_version,
            created_at=client.created_at)
        with self._db.begin() as c:
            c.execute(delete(oauth_clients).where(oauth_clients.c.client_id == client.client_id))
            c.execute(insert(oauth_clients).values(client_id=client.client_id, **values))

    def get(self, client_id: str) -> OAuthClient | None:
        with self._db.connect() as c:
            row = c.execute(select(oauth_clients).where(
                oauth_clients.c.client_id == client_id)).first()
        return _client(row) if row else None

    def list(self) -> list[OAuthClient]:
        with self._db.connect() as c:
            rows = c.execute(select(oauth_clients).order_by(oauth_clients.c.created_at,
                                                            oauth_clients.c.client_id)).all()
        return [_client(r) for r in rows]

    def delete(self, client_id: str) -> bool:
        with self._db.begin() as c:
            result = c.execute(delete(oauth_clients).where(
                oauth_clients.c.client_id == client_id))
        return result.rowcount > 0


def _principals(record: Any) -> list[str]:
    """The SPIFFE IDs and names a token speaks for: client, subject and every actor of its
    ``act`` chain."""
    out = [record.client_id, record.subject]
    act = record.act
    depth = 0
    while isinstance(act, dict) and depth < 64:
        sub = act.get("sub")
        if isinstance(sub, str):
            out.append(sub)
        act = act.get("act")
        depth += 1
    return out


def revoke_for_principal(store: SqlOAuthTokenStore, *, exact: str | None = None,
                         prefix: str | None = None, subject: str | None = None,
                         at: datetime) -> int:
    """Revoke every live token (not revoked, not expired at ``at``) whose client, subject or
    any actor of its chain is ``exact`` or starts with ``prefix``, or whose subject is
    ``subject`` (case-insensitive); with each, every token exchanged from it. For the kill
    switch: a suspended agent, instance or user keeps no outstanding access token."""
    db = store._db
    with db.connect() as c:
        rows = c.execute(select(oauth_tokens.c.jti, oauth_tokens.c.client_id,
                                oauth_tokens.c.subject, oauth_tokens.c.act).where(
            oauth_tokens.c.revoked_at.is_(None), oauth_tokens.c.expires_at > at)).all()
    wanted = subject.lower() if subject else None
    hits = []
    for row in rows:
        names = _principals(row)
        if (exact is not None and exact in names) or (
                prefix is not None and any(n.startswith(prefix) for n in names)) or (
                wanted is not None and row.subject.lower() == wanted):
            hits.append(row.jti)
    return sum(store.revoke_tree(jti, at) for jti in hits)


__all__ += ["revoke_for_principal"]
