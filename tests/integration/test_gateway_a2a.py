"""The A2A SDK as client → tabard gateway → A2A agents built with the same SDK, over
JSON-RPC and SSE on real sockets (issue 6 acceptance): the agent card is fetched through the
gateway and points back at it, ``SendMessage``/``SendStreamingMessage``/``GetTask`` are
decided per user on the route's ``A2aAgent`` (allowed for alice, a JSON-RPC error the
client raises for bob), the upstream gets the injected credential and never the agent's
token, and one audit record per request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError, ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, new_task_from_user_message, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    GetTaskRequest,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskState,
)
from a2a.utils.constants import TransportProtocol
from starlette.applications import Starlette

from tabard.gateway import DENIED
from tabard.spiffe import SpiffeId
from tests.fakes.gateway import RouteProtocol
from tests.integration.gateway_world import (
    UPSTREAM_SECRET,
    GatewayWorld,
    HeaderLog,
    build_world,
    free_port,
)


class Answering(AgentExecutor):
    """Answers each message with a completed task holding one artifact; ``created`` keeps
    the id of each task it made (the upstream's own ids)."""

    def __init__(self) -> None:
        self.created: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        self.created.append(task.id)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.add_artifact([_part(f"echo: {context.get_user_input()}")],
                                   name="answer")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await _cancel(context, event_queue)


SPLIT_KEY = "AKIAIOSFODNN7EXAMPLE"


class Streaming(AgentExecutor):
    """Works on each message in three artifact chunks, then completes; asked for "split",
    its chunks carry an access key cut across two of them."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        asked = context.get_user_input()
        chunks = ([f"key {SPLIT_KEY[:9]}", f"{SPLIT_KEY[9:]} rotated", " done"]
                  if asked == "split" else [f"chunk {n} of {asked}" for n in range(3)])
        for n, chunk in enumerate(chunks):
            await updater.add_artifact([_part(chunk)],
                                       artifact_id="out", name="out", append=n > 0,
                                       last_chunk=n == 2)
            await asyncio.sleep(0.01)
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await _cancel(context, event_queue)


async def _cancel(context: RequestContext, event_queue: EventQueue) -> None:
    """Both agents finish their work within the request, so a cancel only marks the task."""
    assert context.task_id is not None and context.context_id is not None
    await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def _part(text: str) -> Any:
    return new_text_message(text).parts[0]


def agent_app(name: str, executor: AgentExecutor, url: str, *, streaming: bool) -> Starlette:
    """An A2A agent at ``/<name>``: JSON-RPC there, its card under it."""
    card = AgentCard(
        name=name, description=f"the {name} of the gateway tests", version="1.0.0",
        supported_interfaces=[AgentInterface(url=f"{url}/{name}", protocol_version="1.0",
                                             protocol_binding=TransportProtocol.JSONRPC)],
        capabilities=AgentCapabilities(streaming=streaming),
        default_input_modes=["text/plain"], default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["demo"])])
    handler = DefaultRequestHandler(agent_executor=executor, task_store=InMemoryTaskStore(),
                                    agent_card=card)
    return Starlette(routes=[
        *create_agent_card_routes(card, card_url=f"/{name}/.well-known/agent-card.json"),
        *create_jsonrpc_routes(handler, rpc_url=f"/{name}")])


class Agents:
    def __init__(self, world: GatewayWorld) -> None:
        self.world = world
        self.logs: dict[str, HeaderLog] = {}
        self.answering = Answering()
        for route, executor, streaming in (("echo-agent", self.answering, False),
                                           ("stream-agent", Streaming(), True)):
            port = free_port()
            app = agent_app(route, executor, f"http://127.0.0.1:{port}", streaming=streaming)
            self.logs[route] = world.add_route(route, RouteProtocol.A2A, app,
                                               path=f"/{route}", port=port)

@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agents]:
    for world in build_world(Path(tmp_path_factory.mktemp("gateway"))):
        yield Agents(world)


async def _with_client(agents: Agents, user: str, route: str, work: Any, *,
                       streaming: bool) -> Any:
    world = agents.world
    headers = world.headers(user, route, "a2a")
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        card = await A2ACardResolver(http, f"{world.url}/a2a/{route}").get_agent_card()
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)
                               ).create(card)
        try:
            return await work(client, card)
        finally:
            await client.close()


def run(agents: Agents, user: str, route: str, work: Any, *, streaming: bool = False) -> Any:
    return asyncio.run(_with_client(agents, user, route, work, streaming=streaming))


def _request(text: str) -> SendMessageRequest:
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


async def _events(client: Any, text: str) -> list[StreamResponse]:
    return [event async for event in client.send_message(_request(text))]


def test_the_agent_card_comes_through_the_gateway_and_points_at_it(agents: Agents) -> None:
    world = agents.world

    async def work(client: Any, card: AgentCard) -> AgentCard:
        return card

    card = run(agents, "alice", "echo-agent", work)
    assert card.name == "echo-agent"
    assert [i.url for i in card.supported_interfaces] == [f"{world.url}/a2a/echo-agent"]
    seen = agents.logs["echo-agent"].seen[-1]
    assert seen["authorization"] == f"Bearer {UPSTREAM_SECRET}"


def test_send_message_and_get_task_for_an_allowed_user(agents: Agents) -> None:
    log = agents.logs["echo-agent"]
    before = len(log.seen)

    async def work(client: Any, card: AgentCard) -> tuple[Any, Any]:
        [event] = await _events(client, "hello")
        fetched = await client.get_task(GetTaskRequest(id=event.task.id))
        return event.task, fetched

    task, fetched = run(agents, "alice", "echo-agent", work)
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_artifact_text(task.artifacts[0]) == "echo: hello"
    assert fetched.id == task.id and fetched.status.state == TaskState.TASK_STATE_COMPLETED
    seen = log.seen[before:]
    assert len(seen) == 3  # the card, SendMessage, GetTask: every one through the gateway
    assert all(h.get("authorization") == f"Bearer {UPSTREAM_SECRET}" for h in seen)
    assert not any("tabard-agent-token" in h for h in seen)


def test_streaming_message_comes_event_by_event_for_an_allowed_user(agents: Agents) -> None:
    log = agents.logs["stream-agent"]
    before = len(log.seen)

    async def work(client: Any, card: AgentCard) -> list[StreamResponse]:
        return await _events(client, "build")

    events = run(agents, "alice", "stream-agent", work, streaming=True)
    chunks = [get_artifact_text(e.artifact_update.artifact) for e in events
              if e.HasField("artifact_update")]
    assert chunks == ["chunk 0 of build", "chunk 1 of build", "chunk 2 of build"]
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    task_ids = {e.task.id for e in events if e.HasField("task")} | {
        e.status_update.task_id for e in events if e.HasField("status_update")} | {
        e.artifact_update.task_id for e in events if e.HasField("artifact_update")}
    [task_id] = task_ids  # every event names the task by one sealed id
    assert task_id.startswith("tb1")
    seen = log.seen[before:]
    assert seen and all(h.get("authorization") == f"Bearer {UPSTREAM_SECRET}" for h in seen)
    assert not any("tabard-agent-token" in h for h in seen)


@pytest.mark.parametrize(("route", "streaming"), [("echo-agent", False),
                                                  ("stream-agent", True)])
def test_a_user_the_policy_does_not_allow_gets_a_json_rpc_error(
        agents: Agents, route: str, streaming: bool) -> None:
    log = agents.logs[route]

    async def work(client: Any, card: AgentCard) -> int:
        before = len(log.seen)
        with pytest.raises(A2AClientError) as refused:
            await _events(client, "let me in")
        assert f"JSON-RPC Error {DENIED}: denied by tabard" in str(refused.value)
        return len(log.seen) - before

    assert run(agents, "bob", route, work, streaming=streaming) == 0  # never forwarded


def test_one_audit_record_per_request_never_the_secret(agents: Agents) -> None:
    world = agents.world
    head = world.audit.head()
    after = head.seq if head else 0

    async def work(client: Any, card: AgentCard) -> None:
        await _events(client, "audit me")

    run(agents, "alice", "echo-agent", work)
    with pytest.raises(A2AClientError):
        run(agents, "bob", "echo-agent", work)
    world.settle()
    bodies = [r.body() for r in world.audit.records(after=after, limit=100)
              if r.body()["kind"] == "gateway_decision"]
    outcomes = [b for b in bodies if b["outcome"] != "pending"]
    # two card fetches and two messages: one outcome each, in order
    assert [(b["what"]["operation"], b["who"]["user"], b["decision"]["effect"])
            for b in outcomes] == [("agent-card", "alice", "allow"),
                                   ("message/send", "alice", "allow"),
                                   ("agent-card", "bob", "allow"),
                                   ("message/send", "bob", "deny")]
    sent = outcomes[1]
    assert sent["details"]["route"] == "echo-agent" and sent["details"]["lease_id"]
    assert "engineering-a2a" in sent["decision"]["policies"]
    assert outcomes[3]["outcome"] == "denied"
    # the forwarded ones were recorded as intents first
    assert len(bodies) - len(outcomes) == 3
    assert UPSTREAM_SECRET not in json.dumps(bodies)


def _rpc(agents: Agents, headers: dict[str, str], method: str, params: dict[str, Any]
         ) -> dict[str, Any]:
    answer = httpx.post(f"{agents.world.url}/a2a/echo-agent", timeout=10,
                        json={"jsonrpc": "2.0", "id": 5, "method": method, "params": params},
                        headers={**headers, "A2A-Version": "1.0"})
    assert answer.status_code == 200
    return dict(answer.json())


def test_a_task_id_serves_only_the_instance_and_user_that_created_it(agents: Agents) -> None:
    world = agents.world

    async def work(client: Any, card: AgentCard) -> Any:
        [event] = await _events(client, "mine")
        return event.task

    task = run(agents, "alice", "echo-agent", work)
    upstream_id = agents.answering.created[-1]
    assert task.id != upstream_id and upstream_id not in task.id  # the agent never sees it
    alice = world.headers("alice", "echo-agent", "a2a")
    got = _rpc(agents, alice, "GetTask", {"id": task.id})
    assert got["result"]["id"] == task.id  # the same sealed id every time
    assert got["result"]["history"][0]["taskId"] == task.id

    other = SpiffeId.parse("spiffe://demo.example/agent/assistant/instance/8")
    other_instance = {"Tabard-Agent-Token": world.agent_token(other),
                      "Authorization": "Bearer " + world.user_token(
                          "alice", [world.audience("echo-agent", "a2a")], actor=other)}
    log = agents.logs["echo-agent"]
    before = len(log.seen)
    message = {"messageId": "m-2", "role": "ROLE_USER", "parts": [{"text": "more"}]}
    for headers, method, params in (
            (other_instance, "GetTask", {"id": task.id}),
            (other_instance, "CancelTask", {"id": task.id}),
            (other_instance, "tasks/get", {"id": task.id}),  # the 0.3 name
            (other_instance, "SendMessage", {"message": {**message, "taskId": task.id}}),
            (other_instance, "SendMessage", {"message": {**message, "task_id": task.id}}),
            (other_instance, "SendMessage", {"message": {**message,
                                                         "referenceTaskIds": [task.id]}}),
            (other_instance, "GetTaskPushNotificationConfig", {"taskId": task.id,
                                                               "id": "c1"}),
            (alice, "GetTask", {"id": upstream_id}),  # the bare upstream id
            (alice, "GetTask", {"id": task.id[:-3] + "aaa"})):  # a forged one
        refused = _rpc(agents, headers, method, params)
        assert refused["error"] == {"code": -32001, "message": "Task not found"}, (
            method, params)
    assert len(log.seen) == before  # none of them reached the upstream
    # the owner's message into her (completed) task reaches the upstream with its own id
    continued = _rpc(agents, alice, "SendMessage", {"message": {**message,
                                                                "taskId": task.id}})
    assert len(log.seen) == before + 1
    assert upstream_id in continued["error"]["message"]  # "... is in terminal state"


def test_push_notification_webhooks_must_be_under_the_routes_push_urls(
        agents: Agents) -> None:
    world = agents.world
    log = agents.logs["echo-agent"]
    alice = world.headers("alice", "echo-agent", "a2a")

    async def work(client: Any, card: AgentCard) -> Any:
        [event] = await _events(client, "hooked")
        return event.task

    task = run(agents, "alice", "echo-agent", work)
    message = {"messageId": "m-3", "role": "ROLE_USER", "parts": [{"text": "x"}]}
    before = len(log.seen)
    # no push_urls on the route: no webhook at all
    refused = _rpc(agents, alice, "CreateTaskPushNotificationConfig",
                   {"taskId": task.id, "url": "https://hooks.example.com/a2a/1"})
    assert refused["error"]["code"] == DENIED
    assert "accepts no push-notification webhooks" in refused["error"]["message"]
    current = world.routes.get("echo-agent")
    world.routes.put(replace(current, push_urls=("https://hooks.example.com/a2a/",)))
    try:
        time.sleep(1.2)  # the gateway re-reads the routes' version at most once a second
        for method, params in (
                ("CreateTaskPushNotificationConfig",
                 {"taskId": task.id, "url": "https://169.254.169.254/latest/meta-data"}),
                ("CreateTaskPushNotificationConfig",
                 {"taskId": task.id, "url": "https://hooks.example.com/admin"}),
                ("tasks/pushNotificationConfig/set",
                 {"taskId": task.id, "pushNotificationConfig": {"url": "http://hooks.example"
                                                                ".com/a2a/1"}}),
                ("SendMessage", {"message": message, "configuration": {
                    "taskPushNotificationConfig": {"url": "https://localhost/a2a/"}}})):
            refused = _rpc(agents, alice, method, params)
            assert refused["error"]["code"] == DENIED, (method, params)
            assert refused["error"]["message"].startswith("denied by tabard: the webhook URL")
        assert len(log.seen) == before  # none of them reached the upstream
        allowed = _rpc(agents, alice, "CreateTaskPushNotificationConfig",
                       {"taskId": task.id, "url": "https://hooks.example.com/a2a/1"})
        assert len(log.seen) == before + 1  # forwarded; this agent has no push support
        assert allowed["error"]["code"] != DENIED
    finally:
        world.routes.put(current)


def test_an_access_key_split_across_streamed_chunks_is_redacted(agents: Agents) -> None:
    async def work(client: Any, card: AgentCard) -> list[StreamResponse]:
        return await _events(client, "split")

    events = run(agents, "alice", "stream-agent", work, streaming=True)
    chunks = [get_artifact_text(e.artifact_update.artifact) for e in events
              if e.HasField("artifact_update")]
    assert len(chunks) == 3  # every chunk came, in order
    joined = "".join(chunks)
    assert joined == "key [REDACTED:aws_access_key_id] rotated done"
    assert not any(SPLIT_KEY[:8] in c or SPLIT_KEY[-8:] in c for c in chunks)
