"""Routes and approvals over their SQL stores, on SQLite and PostgreSQL: validation, the
change counter, configured routes being read-only, approver rules, expiry and one
decision per approval."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tabard.clock import FakeClock
from tabard.policy import (
    ApprovalDecidedError,
    ApprovalFourEyesError,
    ApprovalNotFoundError,
    ApprovalService,
    ApprovalState,
    Approver,
    NotAnApproverError,
)
from tabard.registry import (
    CredentialSpec,
    InvalidRouteError,
    Route,
    RouteExistsError,
    RouteNotFoundError,
    RouteProtocol,
    RouteReadOnlyError,
    RouteService,
)
from tabard.store import Database, SqlApprovalStore, SqlRouteStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class _Secrets:
    def secret_exists(self, name: str) -> bool:
        return name in {"jira-token", "cc-id", "cc-secret"}


class _Profiles:
    def dlp_profiles(self) -> list[str]:
        return ["default", "secrets"]


def _route(name: str = "jira", **kw: object) -> Route:
    at = FakeClock().now()
    base = Route(name=name, protocol=RouteProtocol.MCP, upstream="https://jira.example/mcp",
                 credential=CredentialSpec(kind="static", secret="jira-token"),
                 dlp_profile="default", created_at=at, updated_at=at)
    return replace(base, **kw)  # type: ignore[arg-type]


def _routes(db: Database, clock: FakeClock, configured: tuple[Route, ...] = ()) -> RouteService:
    return RouteService(SqlRouteStore(db), clock, configured=configured, secrets=_Secrets(),
                        dlp_profiles=_Profiles())


def test_route_crud_and_version(db: Database, clock: FakeClock) -> None:
    routes = _routes(db, clock)
    assert routes.version() == 0 and routes.list() == []
    created = routes.create(_route(strip_headers=("X-Api-Key",),
                                   credential=CredentialSpec(kind="static", secret="jira-token",
                                                             scopes={"tools:jira.*": "write"})),
                            actor="admin")
    assert routes.version() == 1
    got = routes.get("jira")
    assert got == created and got.credential.scopes == {"tools:jira.*": "write"}
    assert got.strip_headers == ("X-Api-Key",) and got.created_at == clock.now()
    with pytest.raises(RouteExistsError):
        routes.create(_route(), actor="admin")
    clock.advance(timedelta(seconds=5))
    updated = routes.update(_route(timeout=5.0, protocol=RouteProtocol.HTTP), actor="admin")
    assert updated.created_at == created.created_at and updated.updated_at == clock.now()
    assert routes.get("jira").protocol is RouteProtocol.HTTP and routes.version() == 2
    routes.delete("jira", actor="admin")
    assert routes.version() == 3
    with pytest.raises(RouteNotFoundError):
        routes.get("jira")
    with pytest.raises(RouteNotFoundError):
        routes.delete("jira", actor="admin")


@pytest.mark.parametrize("bad", [
    {"name": "Jira"}, {"name": "-x"}, {"upstream": "ftp://h/x"},
    {"upstream": "https://user:pw@jira.example/"}, {"upstream": "https:///nohost"},
    {"credential": CredentialSpec(kind="magic")},
    {"credential": CredentialSpec(kind="static", secret="missing")},
    {"credential": CredentialSpec(kind="static")},
    {"credential": CredentialSpec(kind="client_credentials", secret="cc-secret")},
    {"credential": CredentialSpec(kind="none", secret="jira-token")},
    {"dlp_profile": "nope"}, {"dlp_action": "drop"}, {"timeout": 0.0},
    {"strip_headers": ("bad header",)},
    {"user_token_issuers": ("",)}, {"user_token_issuers": ("i",) * 17},
    {"protocol": RouteProtocol.A2A, "push_urls": ("http://hooks.example/",)},
    {"protocol": RouteProtocol.A2A, "push_urls": ("https://hooks.example/?x=1",)},
    {"protocol": RouteProtocol.A2A, "push_urls": ("https://u:p@hooks.example/",)},
    {"push_urls": ("https://hooks.example/",)},  # an mcp route has no webhooks
])
def test_route_rules(db: Database, clock: FakeClock, bad: dict[str, object]) -> None:
    with pytest.raises(InvalidRouteError):
        _routes(db, clock).create(_route(**bad), actor="admin")


def test_dual_token_issuers_and_push_urls_are_stored(db: Database, clock: FakeClock) -> None:
    routes = _routes(db, clock)
    created = routes.create(_route(
        "agent", protocol=RouteProtocol.A2A,
        user_token_issuers=("https://idp.example", "https://idp.example"),
        push_urls=("https://hooks.example/a2a/",)), actor="admin")
    assert created.user_token_issuers == ("https://idp.example",)  # duplicates dropped
    got = routes.get("agent")
    assert got == created and got.push_urls == ("https://hooks.example/a2a/",)
    assert routes.get("agent").to_json()["user_token_issuers"] == ["https://idp.example"]
    assert routes.create(_route("plain"), actor="admin").user_token_issuers == ()
    assert SqlRouteStore(db).get("plain") == routes.get("plain")


def test_the_routes_table_matches_the_migration(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tabard.store.tables import metadata

    with db.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), metadata)
    assert [d for d in diffs if "gateway_routes" in repr(d)] == []


def test_configured_routes_are_read_only(db: Database, clock: FakeClock) -> None:
    configured = _route("demo", credential=CredentialSpec(kind="downstream_jwt"))
    routes = _routes(db, clock, (configured,))
    routes.create(_route("other"), actor="admin")
    assert [(r.name, r.source) for r in routes.list()] == [("demo", "config"), ("other", "api")]
    with pytest.raises(RouteExistsError):
        routes.create(_route("demo"), actor="admin")
    with pytest.raises(RouteReadOnlyError):
        routes.delete("demo", actor="admin")
    with pytest.raises(RouteReadOnlyError):
        routes.update(_route("demo"), actor="admin")


class _Directory:
    people = {
        "bob": Approver("bob", True, True, frozenset({"approver"})),
        "alice": Approver("alice", True, True, frozenset({"approver"})),
        "eve": Approver("eve", True, True, frozenset()),
        "gone": Approver("gone", False, True, frozenset({"approver"})),
        "ci-bot": Approver("ci-bot", True, False, frozenset({"approver"})),
    }

    def find_approver(self, user_name: str) -> Approver | None:
        return self.people.get(user_name)


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def approval_requested(self, approval: object) -> None:
        self.events.append(("requested", approval.id, approval.state))  # type: ignore[attr-defined]

    def approval_decided(self, approval: object) -> None:
        self.events.append(("decided", approval.id, approval.state))  # type: ignore[attr-defined]


def _request(service: ApprovalService, user: str | None = "alice") -> str:
    return service.request(agent="assistant", instance="spiffe://demo.example/x", user=user,
                           action="tools/call", resource="Tool::deploy.trigger",
                           route="demo-tools", reason="risk 90 above 50",
                           timeout=timedelta(seconds=60)).id


def test_approvals(db: Database, clock: FakeClock) -> None:
    recorder = _Recorder()
    service = ApprovalService(SqlApprovalStore(db), _Directory(), clock, recorder=recorder)
    first = _request(service)
    assert service.get(first).state is ApprovalState.PENDING
    assert [a.id for a in service.list(state=ApprovalState.PENDING)] == [first]
    for who, error in (("alice", ApprovalFourEyesError), ("eve", NotAnApproverError),
                       ("gone", NotAnApproverError), ("ci-bot", NotAnApproverError),
                       ("nobody", NotAnApproverError)):
        with pytest.raises(error):
            service.approve(first, approver=who)
    approved = service.approve(first, approver="bob", reason="release window")
    assert (approved.state, approved.decided_by, approved.decision_reason) == (
        ApprovalState.APPROVED, "bob", "release window")
    stored = service.get(first)
    assert stored.state is ApprovalState.APPROVED and stored.decided_at == clock.now()
    with pytest.raises(ApprovalDecidedError):
        service.deny(first, approver="bob")

    second = _request(service)
    assert service.deny(second, approver="bob").state is ApprovalState.DENIED

    third = _request(service)
    clock.advance(timedelta(seconds=61))
    assert service.get(third).state is ApprovalState.EXPIRED
    assert [a.id for a in service.list(state=ApprovalState.EXPIRED)] == [third]
    assert service.list(state=ApprovalState.PENDING) == []
    with pytest.raises(ApprovalDecidedError):
        service.approve(third, approver="bob")
    with pytest.raises(ApprovalNotFoundError):
        service.get("nope")
    assert [e[0] for e in recorder.events] == ["requested", "decided", "requested", "decided",
                                               "requested"]


def test_a_decision_is_made_once_across_services(db: Database, clock: FakeClock) -> None:
    one = ApprovalService(SqlApprovalStore(db), _Directory(), clock)
    two = ApprovalService(SqlApprovalStore(db), _Directory(), clock)
    approval = _request(one, user="carol")
    store = SqlApprovalStore(db)
    assert store.decide(approval, state=ApprovalState.DENIED, decided_by="alice",
                        decided_at=clock.now(), reason="")
    with pytest.raises(ApprovalDecidedError):
        two.approve(approval, approver="bob")
    assert one.get(approval).decided_by == "alice"


def test_an_agent_as_principal_call_is_not_approved_by_the_agents_owner(
        db: Database, clock: FakeClock) -> None:
    decided: list[object] = []

    class Recorder(_Recorder):
        def approval_decided(self, approval: object) -> None:
            decided.append(approval)

    owners = {"assistant": "bob"}
    service = ApprovalService(SqlApprovalStore(db), _Directory(), clock, recorder=Recorder(),
                              owner_of=owners.get)
    approval = _request(service, user=None)
    with pytest.raises(ApprovalFourEyesError):
        service.approve(approval, approver="bob")  # the owner stands in for the user
    approved = service.approve(approval, approver="alice", via="tok-123")
    assert approved.decided_by == "alice" and approved.decided_via == "tok-123"
    assert decided == [approved]  # the recorder sees the admin token behind the decision
    unchecked = ApprovalService(SqlApprovalStore(db), _Directory(), clock)
    with pytest.raises(ApprovalFourEyesError):  # no owner lookup: fail closed
        unchecked.approve(_request(unchecked, user=None), approver="alice")


def test_migration_0013_keeps_routes_and_gives_them_empty_lists(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    db = Database(database_url)
    try:
        db.migrate()
        clock = FakeClock()
        _routes(db, clock).create(_route("kept", user_token_issuers=("https://idp",)),
                                  actor="admin")
        with db.engine.begin() as connection:
            config = db.alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0013-1")
        columns = {c["name"] for c in inspect(db.engine).get_columns("gateway_routes")}
        assert not {"user_token_issuers", "push_urls"} & columns and "name" in columns
        db.migrate()  # a route stored before the migration reads with empty lists
        got = SqlRouteStore(db).get("kept")
        assert got is not None and got.user_token_issuers == () and got.push_urls == ()
    finally:
        db.dispose()
