"""Issue 7's multi-process acceptance: one ``tabard server``, three ``tabard gateway``
processes over the same database, one ``tabard node``, and live traffic from three agents
through the gateways (``tests/support/kill_world.py``).

Suspending an agent makes every gateway deny it and the node drop its SVID, measured from
the suspend call's return over 100 kill + resume cycles (p50/p99 printed; the goal of
ARCHITECTURE §8 is p99 ≤ 200 ms, asserted here with room for a loaded 2-core machine);
the other agents are served throughout. A gateway stopped and restarted during a
suspension lets no call through; a server restarted right after a change keeps it, and
the replicas keep following the log. On SQLite (gateways poll the log's head) with 100
kills; the PostgreSQL path between processes (``LISTEN``/``NOTIFY``) is covered by the
signal store's contract tests.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.kill_world import KillWorld, iter_cycles

KILLS = {"sqlite": 100}
BOUND_P99 = 0.5  # seconds; the goal (and the usual figure, see the output) is ≤ 0.2
VICTIM = "victim"


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[str, KillWorld]]:
    # SQLite only: this module costs about two minutes per backend, and the PostgreSQL path
    # between processes (LISTEN/NOTIFY) is covered by the signal store's contract tests
    base = Path(tempfile.mkdtemp(prefix="tabard-killgw-"))
    try:
        with KillWorld(base) as w:
            yield "sqlite", w
    finally:
        shutil.rmtree(base, ignore_errors=True)


def pct(samples: list[float], p: int) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Traffic:
    """The bystanders call every gateway in turn until stopped; every answer must be 200."""

    def __init__(self, world: KillWorld) -> None:
        self.world = world
        self.stop = threading.Event()
        self.calls = 0
        self.rtt: list[float] = []
        self.bad: list[tuple[str, str, int]] = []
        self.threads = [threading.Thread(target=self._run, args=(a,), daemon=True)
                        for a in world.agents if a != VICTIM]

    def _run(self, agent: str) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                for gw in self.world.gws:
                    sent = time.perf_counter()
                    status = self.world.call(gw, agent, client)
                    self.rtt.append(time.perf_counter() - sent)
                    self.calls += 1
                    if status != 200:
                        self.bad.append((agent, gw.url, status))
                self.stop.wait(0.02)

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def test_suspension_reaches_every_gateway_and_the_node_within_the_bound(
        world: tuple[str, KillWorld]) -> None:
    backend, w = world
    kills = KILLS[backend]
    with Traffic(w) as traffic:
        cycles = list(iter_cycles(w, VICTIM, kills))
    gateway_s = [s for c in cycles for s in c.gateways]
    node_s = [c.node for c in cycles]
    assert len(cycles) == kills and len(gateway_s) == kills * len(w.gws)
    assert traffic.bad == [] and traffic.calls > kills
    worst = [max([*c.gateways, c.node]) for c in cycles]
    ms = {name: (pct(s, 50) * 1000, pct(s, 99) * 1000)
          for name, s in (("gateways", gateway_s), ("node", node_s), ("all", worst))}
    print(f"\nkill switch propagation on {backend}, {kills} kills, 3 gateways + 1 node, "
          f"{traffic.calls} bystander calls served: "
          + "; ".join(f"{k} p50 {a:.1f} ms p99 {b:.1f} ms" for k, (a, b) in ms.items())
          + f"; one gateway call takes p50 {pct(traffic.rtt, 50) * 1000:.1f} ms, p99 "
          f"{pct(traffic.rtt, 99) * 1000:.1f} ms (a denial is seen when its answer arrives)")
    assert pct(worst, 99) <= BOUND_P99, ms


def test_a_gateway_restarted_during_a_suspension_lets_no_call_through(
        world: tuple[str, KillWorld]) -> None:
    _, w = world
    gw = w.gws[0]
    seen: list[int] = []
    stop = threading.Event()

    def hammer() -> None:  # the victim keeps trying while the gateway goes and comes back
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                seen.append(w.call(gw, VICTIM, client))
                stop.wait(0.005)

    with w.http as http:
        w.cycle(VICTIM, http)
        thread = threading.Thread(target=hammer, daemon=True)
        thread.start()
        try:
            gw.stop()
            gw.start()
            assert w.call(gw, VICTIM) == 403  # the first call after the restart
            time.sleep(0.5)
        finally:
            stop.set()
            thread.join(10)
        assert 200 not in seen and {0, 403} <= set(seen), set(seen)
        assert w.call(gw, "bystander-a") == 200
        w.resume(VICTIM, http)
    assert w.call(gw, VICTIM) == 200


def test_a_server_restarted_after_a_change_keeps_it_and_replicas_follow(
        world: tuple[str, KillWorld]) -> None:
    _, w = world
    with w.http as http:
        event = w.cycle(VICTIM, http).event_id
    w.server.restart()
    with w.http as http:
        state = http.get("/api/v1/kill").json()
        assert state["last_event_id"] == event
        assert [(e["kind"], e["target"], e["action"]) for e in state["entries"]] == [
            ("agent", VICTIM, "suspend")]
        assert all(w.call(gw, VICTIM) == 403 for gw in w.gws)
        others = set(w.agents) - {VICTIM}
        w.open_stream(others)[0].cancel()  # the node, reconnected, still refuses it
        w.resume(VICTIM, http)  # waits until every gateway and the node serve it again
        again = w.cycle(VICTIM, http)  # and the next change propagates as before
        assert again.event_id == event + 2 and max(again.gateways) < 5
        w.resume(VICTIM, http)
