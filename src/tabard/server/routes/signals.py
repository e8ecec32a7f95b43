"""The kill switch over REST and its signal stream (``docs/design/kill-switch.md``).

* ``POST /api/v1/kill/{kind}/{target}/suspend|narrow|resume`` (admin): one
  :class:`~tabard.signals.KillSwitch` call each; ``kind`` is ``agent``, ``instance``,
  ``user`` or ``node``; a SPIFFE ID target is sent percent-encoded.
* ``GET /api/v1/kill`` (admin): the entries in force.
* ``GET /api/v1/signals/state`` (admin or node): the full state and the last event id.
* ``GET /api/v1/signals/stream`` (admin or node): server-sent events. ``event: signal``
  carries one event with ``id:`` its event id; a client resumes with ``Last-Event-ID`` or
  ``?after=N`` and gets every event after N, or ``event: resync`` with the full state when it
  gave no position or is more than :data:`MAX_BACKLOG` events behind. Comments are
  heartbeats every ``signal_heartbeat`` seconds. The stream ends when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from tabard.errors import Invalid, Unavailable
from tabard.server.deps import Admin, ServerServices, Services, SignalReader
from tabard.signals import (
    KillAction,
    KillState,
    KillSwitch,
    KillTarget,
    Narrowing,
    SignalEvent,
    encode_comment,
    encode_message,
)

router = APIRouter(tags=["kill switch"])

MAX_BACKLOG = 1000
_QUEUE_LIMIT = 10_000


def _switch(services: ServerServices) -> KillSwitch:
    if services.kill is None:
        raise Unavailable("this server has no kill switch")
    return services.kill


class KillBody(BaseModel):
    reason: str = Field(default="", max_length=1000)


class NarrowBody(KillBody):
    read_only: bool = False
    blocked_categories: list[str] = Field(default_factory=list, max_length=64)
    approval_above: int | None = Field(default=None, ge=0, le=100)


class ResumeBody(KillBody):
    only: KillAction | None = Field(default=None, description="suspend or narrow; both when "
                                    "absent")


def _answer(switch: KillSwitch, target: KillTarget, event: SignalEvent | None
            ) -> dict[str, Any]:
    entries = event.entries if event is not None else switch.hub.kill_list.entries(target)
    return {"event": event.to_json() if event is not None else None,
            "target": {"kind": target.kind.value, "value": target.value},
            "entries": [e.to_json() for e in entries]}


@router.post("/api/v1/kill/{kind}/{target:path}/suspend", summary="Suspend a target")
def kill_suspend(kind: str, target: str, body: KillBody, services: Services,
                 admin: Admin) -> dict[str, Any]:
    switch, t = _switch(services), KillTarget.of(kind, target)
    return _answer(switch, t, switch.suspend(t, actor=admin.actor, reason=body.reason))


@router.post("/api/v1/kill/{kind}/{target:path}/narrow", summary="Narrow a target")
def kill_narrow(kind: str, target: str, body: NarrowBody, services: Services,
                admin: Admin) -> dict[str, Any]:
    switch, t = _switch(services), KillTarget.of(kind, target)
    narrowing = Narrowing(body.read_only, frozenset(body.blocked_categories),
                          body.approval_above)
    return _answer(switch, t, switch.narrow(t, narrowing, actor=admin.actor,
                                            reason=body.reason))


@router.post("/api/v1/kill/{kind}/{target:path}/resume", summary="Resume a target")
def kill_resume(kind: str, target: str, body: ResumeBody, services: Services,
                admin: Admin) -> dict[str, Any]:
    """Lifts only what the kill switch set; ``event`` is null when nothing was in force."""
    switch, t = _switch(services), KillTarget.of(kind, target)
    return _answer(switch, t, switch.resume(t, actor=admin.actor, reason=body.reason,
                                            only=body.only))


@router.get("/api/v1/kill", summary="Entries in force")
def kill_list(services: Services, admin: Admin) -> dict[str, Any]:
    return _switch(services).state().to_json()


@router.get("/api/v1/signals/state", summary="Full kill state and last event id")
def signals_state(services: Services, reader: SignalReader) -> dict[str, Any]:
    return _switch(services).state().to_json()


def _position(after: int | None, last_event_id: str | None) -> int | None:
    if after is not None:
        return after
    if last_event_id is None or last_event_id == "":
        return None
    try:
        value = int(last_event_id)
    except ValueError:
        raise Invalid("Last-Event-ID must be an event id") from None
    if value < 0:
        raise Invalid("Last-Event-ID must be an event id")
    return value


def _resync(state: KillState) -> bytes:
    return encode_message(json.dumps(state.to_json(), separators=(",", ":")),
                          event="resync", id=state.last_event_id)


def _signal(event: SignalEvent) -> bytes:
    return encode_message(json.dumps(event.to_json(), separators=(",", ":")),
                          event="signal", id=event.id)


@router.get("/api/v1/signals/stream", summary="Signal stream (server-sent events)")
async def signals_stream(
    request: Request, services: Services, reader: SignalReader,
    after: int | None = Query(default=None, ge=0),
    last_event_id: str | None = Header(default=None, max_length=32),
) -> StreamingResponse:
    switch = _switch(services)
    hub = switch.hub
    position = _position(after, last_event_id)
    heartbeat = services.signal_heartbeat
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[SignalEvent | None] = asyncio.Queue()

    def deliver(event: SignalEvent | None) -> None:
        if queue.qsize() >= _QUEUE_LIMIT:
            event = None  # too slow: the client gets a resync instead
            while not queue.empty():
                queue.get_nowait()
        queue.put_nowait(event)

    def on_event(event: SignalEvent) -> None:
        loop.call_soon_threadsafe(deliver, event)

    unsubscribe = hub.subscribe(on_event)
    stopping: asyncio.Event | None = getattr(request.app.state, "stopping", None)

    async def body() -> AsyncIterator[bytes]:
        stop_task = asyncio.ensure_future(stopping.wait()) if stopping is not None else None
        get_task: asyncio.Future[SignalEvent | None] | None = None
        try:
            sent: int
            if position is None:
                state = hub.kill_list.snapshot()
                yield _resync(state)
                sent = state.last_event_id
            else:
                backlog = await asyncio.to_thread(switch.events, after=position,
                                                  limit=MAX_BACKLOG + 1)
                newest = max(hub.last_event_id, backlog[-1].id if backlog else 0)
                if len(backlog) > MAX_BACKLOG or position > newest:
                    state = await asyncio.to_thread(switch.state)
                    yield _resync(state)
                    sent = state.last_event_id
                else:
                    sent = position
                    for event in backlog:
                        yield _signal(event)
                        sent = event.id
            while True:
                get_task = asyncio.ensure_future(queue.get())
                waiting = {get_task} | ({stop_task} if stop_task is not None else set())
                done, _ = await asyncio.wait(waiting, timeout=heartbeat,
                                             return_when=asyncio.FIRST_COMPLETED)
                if get_task not in done:
                    get_task.cancel()
                    if stop_task is not None and stop_task in done:
                        return
                    yield encode_comment("heartbeat")
                    continue
                got = get_task.result()
                if got is None:
                    state = await asyncio.to_thread(switch.state)
                    yield _resync(state)
                    sent = state.last_event_id
                    continue
                if got.id <= sent:
                    continue
                if got.id > sent + 1:  # a gap (backlog raced the hub): fill it from the log
                    for missed in await asyncio.to_thread(switch.events, after=sent,
                                                          limit=got.id - sent - 1):
                        yield _signal(missed)
                yield _signal(got)
                sent = got.id
        finally:
            unsubscribe()
            for task in (get_task, stop_task):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"cache-control": "no-store",
                                      "x-accel-buffering": "no"})
