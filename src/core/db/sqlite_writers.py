"""SQLite's write transactions of one process take turns on the event loop.

SQLite has one writer at a time. A second `BEGIN IMMEDIATE` waits in SQLite's busy handler,
which sleeps 1, 2, 5, 10, … up to 100 ms between tries whatever the holder does meanwhile:
with eight concurrent signups a writer often slept on long after the lock was free (p99
2.2 s, and the signup rate fell below bcrypt's). So the write engine's transactions of this
process queue on an `asyncio.Lock` first, taken when a transaction begins (its first
statement) and handed on when it commits or rolls back, or at the latest when its
connection goes back to the pool. Other processes (a second worker, the CLI, a migration)
still meet SQLite's busy timeout, as before.

A transaction that cannot have its turn within the busy timeout goes ahead without it and
leaves the wait to SQLite's busy handler (so it fails, if it does, with SQLite's own
"database is locked", as it always did); at worst it waits twice the busy timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.util.concurrency import await_only, in_greenlet

_HOLDS_TURN = "inkwell_sqlite_writer_turn"


class WriterTurns:
    """One write transaction of this process at a time; the others wait on the loop."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._lock = asyncio.Lock()

    @property
    def taken(self) -> bool:
        return self._lock.locked()

    def take(self, info: dict[str, Any]) -> None:
        """At a transaction's beginning, in SQLAlchemy's greenlet: wait for the turn (the
        loop runs meanwhile). `info` is the connection's, which says who holds it."""
        if not in_greenlet():  # a synchronous caller: nothing to wait on, SQLite decides
            return
        lock = self._lock
        try:
            if self._timeout > 0:
                await_only(asyncio.wait_for(lock.acquire(), self._timeout))
            elif not lock.locked():  # no timeout to wait for: a free turn only
                await_only(lock.acquire())
            else:
                return
        except TimeoutError:
            return  # the busy handler waits instead, and answers as it always did
        info[_HOLDS_TURN] = True

    def give_back(self, info: dict[str, Any]) -> None:
        """At a commit, a rollback or the connection's check-in: the next writer's turn."""
        if info.pop(_HOLDS_TURN, False):
            self._lock.release()
