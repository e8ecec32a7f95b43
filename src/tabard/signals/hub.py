"""The in-process signal bus of one server replica.

:meth:`SignalHub.poke` reads the events the local kill list has not seen yet from the store,
in id order, applies each to the kill list and hands it to every subscriber. It is called
after every local commit, by the PostgreSQL ``LISTEN`` relay when another replica commits
(``tabard.store.signals``), and by a periodic fallback; reading from the store rather than
trusting the notification's payload means nothing is lost or reordered when notifications
arrive late, twice, or not at all.

A replica without notifications (SQLite: a ``tabard gateway`` process or a second server over
the same file) calls :meth:`SignalHub.check` every few tens of milliseconds instead: one read
of the one-row head, and the events only when it moved.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tabard.signals.model import KillList, SignalEvent
from tabard.signals.ports import SignalStore

__all__ = ["SignalHub", "Subscriber"]

log = logging.getLogger("tabard.signals")

Subscriber = Callable[[SignalEvent], None]
_PAGE = 1000


class SignalHub:
    def __init__(self, store: SignalStore) -> None:
        self._store = store
        self.kill_list = KillList()
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._sub_lock = threading.Lock()

    def load(self) -> None:
        """Start from the stored snapshot (at start-up)."""
        with self._lock:
            self.kill_list.load(self._store.state())

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every new event, after the kill list has it; returns the
        function that unsubscribes. Subscribers must be quick and must not raise."""
        with self._sub_lock:
            self._subscribers = [*self._subscribers, subscriber]

        def unsubscribe() -> None:
            with self._sub_lock:
                self._subscribers = [s for s in self._subscribers if s is not subscriber]

        return unsubscribe

    @property
    def last_event_id(self) -> int:
        return self.kill_list.last_event_id

    def check(self) -> int:
        """Publish new events only if the stored head is past the kill list (one read of the
        head row when nothing changed); returns how many were published."""
        if self._store.last_event_id() <= self.kill_list.last_event_id:
            return 0
        return self.poke()

    def poke(self) -> int:
        """Publish every stored event newer than the kill list; returns how many."""
        published = 0
        with self._lock:
            while True:
                events = self._store.events(after=self.kill_list.last_event_id, limit=_PAGE)
                for event in events:
                    if self.kill_list.apply(event):
                        published += 1
                        for subscriber in self._subscribers:
                            try:
                                subscriber(event)
                            except Exception:
                                log.exception("a signal subscriber failed")
                if len(events) < _PAGE:
                    return published
