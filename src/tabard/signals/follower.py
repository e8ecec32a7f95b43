"""A subscriber of the signal stream: follows ``GET /api/v1/signals/stream`` and keeps a
local :class:`~tabard.signals.model.KillList`, for nodes and gateways.

Wire (``docs/design/kill-switch.md``): ``event: signal`` messages carry one
:class:`SignalEvent` as JSON with ``id:`` the event id; ``event: resync`` carries a full
:class:`KillState` (sent first on a connection without a position, or when the follower is
too far behind); comments are heartbeats. The follower reconnects with ``?after=<last id>``
after any failure (exponential backoff with full jitter), and also fetches the full state
every ``resync_interval`` as a fallback. Enforcement decisions read ``kill_list`` directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from urllib.parse import urljoin

import httpx

from tabard.signals.model import KillList, KillState, SignalEvent
from tabard.signals.sse import SseParser

__all__ = ["SignalFollower"]

log = logging.getLogger("tabard.signals")

ClientSource = Callable[[], httpx.AsyncClient]
Listener = Callable[[SignalEvent | None], None]
"""Called after every change of the kill list: with the event, or None after a resync."""


class SignalFollower:
    def __init__(self, client: ClientSource, base_url: str, *,
                 headers: dict[str, str] | None = None, heartbeat_timeout: float = 45.0,
                 resync_interval: float = 300.0, backoff_base: float = 0.2,
                 backoff_cap: float = 10.0, rng: random.Random | None = None) -> None:
        self._client = client
        self._base = base_url.rstrip("/") + "/"
        self._headers = {"accept": "text/event-stream", **(headers or {})}
        self._heartbeat_timeout = heartbeat_timeout
        self._resync_interval = resync_interval
        self._backoff = (backoff_base, backoff_cap)
        self._rng = rng or random.SystemRandom()
        self.kill_list = KillList()
        self._listeners: list[Listener] = []
        self.synced = asyncio.Event()
        self.connected = False
        self.resyncs = 0

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _changed(self, event: SignalEvent | None) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("a kill-list listener failed")

    def load(self, state: KillState) -> None:
        self.kill_list.load(state)
        self.resyncs += 1
        self.synced.set()
        self._changed(None)

    def apply(self, event: SignalEvent) -> None:
        if self.kill_list.apply(event):
            self._changed(event)

    async def fetch_state(self) -> KillState:
        response = await self._client().get(urljoin(self._base, "api/v1/signals/state"),
                                            headers={**self._headers,
                                                     "accept": "application/json"})
        response.raise_for_status()
        return KillState.from_json(response.json())

    async def run(self) -> None:
        """Follow until cancelled."""
        attempt = 0
        resync = asyncio.create_task(self._resync_loop())
        try:
            while True:
                try:
                    await self._follow()
                    attempt = 0
                except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
                    log.info("signal stream interrupted: %s", type(exc).__name__)
                except Exception as exc:  # transport wrappers raise tabard errors too
                    log.info("signal stream interrupted: %s", exc)
                self.connected = False
                base, cap = self._backoff
                delay = self._rng.uniform(0, min(cap, base * 2 ** min(attempt, 20)))
                attempt += 1
                await asyncio.sleep(delay)
        finally:
            resync.cancel()

    async def _follow(self) -> None:
        url = urljoin(self._base, "api/v1/signals/stream")
        params = {}
        if self.synced.is_set():
            params["after"] = str(self.kill_list.last_event_id)
        timeout = httpx.Timeout(10.0, read=self._heartbeat_timeout)
        parser = SseParser()
        async with self._client().stream("GET", url, params=params, headers=self._headers,
                                         timeout=timeout) as response:
            response.raise_for_status()
            self.connected = True
            async for chunk in response.aiter_text():
                for message in parser.feed(chunk):
                    if message.event == "signal":
                        self.apply(SignalEvent.from_json(json.loads(message.data)))
                    elif message.event == "resync":
                        self.load(KillState.from_json(json.loads(message.data)))

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync_interval)
            try:
                state = await self.fetch_state()
            except Exception as exc:
                log.info("periodic signal resync failed: %s", type(exc).__name__)
                continue
            if state.last_event_id >= self.kill_list.last_event_id:
                self.load(state)


async def wait_for(predicate: Callable[[], bool], follower: SignalFollower,
                   timeout: float) -> bool:
    """Wait until ``predicate`` holds after some change of the follower's kill list."""
    done = asyncio.Event()

    def check(_: SignalEvent | None) -> None:
        if predicate():
            done.set()

    follower.on_change(check)
    if predicate():
        return True
    try:
        await asyncio.wait_for(done.wait(), timeout)
        return True
    except TimeoutError:
        return False


