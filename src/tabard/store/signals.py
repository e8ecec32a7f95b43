"""SQL implementation of the kill switch's :class:`~tabard.signals.SignalStore`, and the
PostgreSQL ``LISTEN`` relay that tells this replica's hub about other replicas' changes.

A change updates the one-row ``signal_head`` first: that takes SQLite's write lock and a
PostgreSQL row lock, so writers are serialised and ids are assigned in commit order. On
PostgreSQL the same transaction sends ``NOTIFY tabard_signals, '<id>'``, delivered to every
listener when (and only if) it commits.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, insert, select, text, update

from tabard.signals import Change, KillEntry, KillState, KillTarget, SignalEvent
from tabard.store.db import Database
from tabard.store.tables import kill_entries, signal_events, signal_head

__all__ = ["CHANNEL", "PgSignalListener", "SqlSignalStore"]

log = logging.getLogger("tabard.store")

CHANNEL = "tabard_signals"
_HEAD = select(signal_head.c.last_event_id).where(signal_head.c.id == 1)


def _dump(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class SqlSignalStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def commit(self, target: KillTarget, at: datetime,
               decide: Callable[[tuple[KillEntry, ...]], Change]) -> SignalEvent:
        with self._db.begin() as c:
            c.execute(update(signal_head).where(signal_head.c.id == 1).values(
                last_event_id=signal_head.c.last_event_id + 1))
            event_id = int(c.execute(select(signal_head.c.last_event_id).where(
                signal_head.c.id == 1)).scalar_one())
            where = (kill_entries.c.kind == target.kind.value,
                     kill_entries.c.target == target.value)
            rows = c.execute(select(kill_entries.c.body).where(*where)
                             .order_by(kill_entries.c.action)).scalars().all()
            change = decide(tuple(KillEntry.from_json(json.loads(r)) for r in rows))
            c.execute(delete(kill_entries).where(*where))
            if change.entries:
                c.execute(insert(kill_entries), [
                    {"kind": e.target.kind.value, "target": e.target.value,
                     "action": e.action.value, "body": _dump(e.to_json())}
                    for e in change.entries])
            event = SignalEvent(event_id, at, change.action, target, change.actor,
                                change.reason, change.entries, dict(change.details))
            c.execute(insert(signal_events).values(
                id=event_id, at=at, action=change.action.value, kind=target.kind.value,
                target=target.value, body=_dump(event.to_json())))
            if self._db.dialect == "postgresql":
                c.execute(text("SELECT pg_notify(:channel, :payload)"),
                          {"channel": CHANNEL, "payload": str(event_id)})
        return event

    def state(self) -> KillState:
        with self._db.begin() as c:
            last = int(c.execute(select(signal_head.c.last_event_id).where(
                signal_head.c.id == 1)).scalar_one())
            rows = c.execute(select(kill_entries.c.body).order_by(
                kill_entries.c.kind, kill_entries.c.target, kill_entries.c.action)
            ).scalars().all()
        return KillState(last, tuple(KillEntry.from_json(json.loads(r)) for r in rows))

    def events(self, *, after: int, limit: int) -> list[SignalEvent]:
        with self._db.read() as c:
            rows = c.execute(select(signal_events.c.body).where(signal_events.c.id > after)
                             .order_by(signal_events.c.id).limit(limit)).scalars().all()
        return [SignalEvent.from_json(json.loads(r)) for r in rows]

    def last_event_id(self) -> int:
        # the cheap check of replicas that poll (SignalHub.check): one row by primary key
        with self._db.read() as c:
            head = c.execute(_HEAD).scalar_one_or_none()
        return int(head or 0)


class PgSignalListener:
    """A thread that ``LISTEN``s on :data:`CHANNEL` and calls ``on_notify`` for each
    notification (and once after every (re)connection, so nothing committed while it was
    away is missed). Only for PostgreSQL."""

    def __init__(self, db: Database, on_notify: Callable[[], object], *,
                 poll: float = 1.0) -> None:
        if db.dialect != "postgresql":
            raise ValueError("LISTEN/NOTIFY needs PostgreSQL")
        self._conninfo = db.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._on_notify = on_notify
        self._poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tabard-signals-listen",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _notify(self) -> None:
        try:
            self._on_notify()
        except Exception:
            log.exception("relaying a signal notification failed")

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._notify()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=self._poll):
                            self._notify()
            except Exception as exc:
                self.listening.clear()
                log.warning("signal LISTEN connection lost (%s); reconnecting",
                            type(exc).__name__)
                self._stop.wait(1.0)
