"""In-memory ports of the authorization server, following the SQL adapters' contract."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime

from tabard.oauth import AgentFacts, IssuedToken, OAuthClient


class InMemoryTokenStore:
    def __init__(self) -> None:
        self.records: dict[str, IssuedToken] = {}
        self._lock = threading.Lock()

    def add(self, record: IssuedToken) -> None:
        with self._lock:
            assert record.jti not in self.records
            self.records[record.jti] = record

    def get(self, jti: str) -> IssuedToken | None:
        return self.records.get(jti)

    def revoke_tree(self, jti: str, at: datetime) -> int:
        with self._lock:
            if jti not in self.records:
                return 0
            count, frontier = 0, [jti]
            while frontier:
                current = frontier.pop()
                record = self.records[current]
                if record.revoked_at is None:
                    self.records[current] = dataclasses.replace(record, revoked_at=at)
                    count += 1
                frontier += [r.jti for r in self.records.values() if r.parent_jti == current]
            return count


class InMemoryClientStore:
    def __init__(self) -> None:
        self.clients: dict[str, OAuthClient] = {}

    def put(self, client: OAuthClient) -> None:
        self.clients[client.client_id] = client

    def get(self, client_id: str) -> OAuthClient | None:
        return self.clients.get(client_id)

    def list(self) -> list[OAuthClient]:
        return sorted(self.clients.values(), key=lambda c: (c.created_at, c.client_id))

    def delete(self, client_id: str) -> bool:
        return self.clients.pop(client_id, None) is not None


class FakeAgents:
    def __init__(self) -> None:
        self.agents: dict[str, AgentFacts] = {}

    def add(self, name: str, *, delegation: str = "hybrid", state: str = "active",
            checksum: str = "ab" * 32, checksum_pending: bool = False) -> None:
        self.agents[name] = AgentFacts(
            name=name, state=state,
            issues_identities=state in ("active", "pending_recertification"),
            delegation=delegation, checksum=checksum, checksum_pending=checksum_pending)

    def agent(self, name: str) -> AgentFacts | None:
        return self.agents.get(name)


class FakeUsers:
    def __init__(self, **users: bool) -> None:
        self.users = dict(users)

    def user_active(self, user_name: str) -> bool | None:
        return self.users.get(user_name)
