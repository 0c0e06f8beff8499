"""SQLite's hot statements on the event loop's own thread.

aiosqlite runs every statement in its connection's thread. For a primary-key read that hop
costs ≈ 180 µs of CPU (the thread's wake-up, the GIL handed back and forth around each step
of the statement, the loop woken through its self-pipe), while the statement itself, run
where it is asked for, takes ≈ 8 µs (docs/performance.md). So the hot statements — the
session check, the public profile — run on a read-only `sqlite3` connection on the loop.

That blocks the loop for the statement, which is only acceptable while the statement does
no I/O wait, so the connection is made never to wait: no busy timeout. Any error of the
driver (a lock answers at once) closes it and sends the statement, and the hot statements of
the next `cool_down_seconds`, to the pool's threads instead; and a statement that
read from the disk rather than the page cache (the thread's block reads or major page faults
grew: `getrusage(RUSAGE_THREAD)`, ≈ 0.5 µs a call) sends this process's hot statements back
to the threads for `cool_down_seconds`. So at most one statement per cool-down waits on the
disk on the loop. Wall time cannot tell: sqlite3 lets go of the GIL while a statement steps,
and taking it back waits for whatever thread holds it, so under load a cached read measured
4-25 ms now and then; only a statement past `stall_seconds` (far beyond that) counts.

In WAL mode each statement reads the newest committed state, as on any other connection.
`SQLITE_INLINE_READS=false` turns this off.
"""

from __future__ import annotations

import resource
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy.engine import URL

STALL_SECONDS = 0.1
COOL_DOWN_SECONDS = 5.0


def _disk_reads() -> int:
    """Block reads and major page faults of this thread so far (0 where not measurable)."""
    usage = resource.getrusage(_RUSAGE_THREAD)
    return usage.ru_inblock + usage.ru_majflt


_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


class InlineUnavailable(Exception):
    """The statement cannot run on the loop just now: run it on the threads."""


def inline_path(url: URL) -> str | None:
    """The file of a file-backed SQLite database, else None (memory databases, URIs)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:") or url.query:
        return None
    return database


class InlineSQLite:
    """A read-only connection for short statements on the loop; `execute_fetchall` is
    aiosqlite's, so that a hot statement's function runs on either."""

    def __init__(
        self,
        path: str,
        *,
        stall_seconds: float = STALL_SECONDS,
        cool_down_seconds: float = COOL_DOWN_SECONDS,
    ) -> None:
        self._path = path
        self._stall_seconds = stall_seconds
        self._cool_down_seconds = cool_down_seconds
        self._connection: sqlite3.Connection | None = None
        self._threads_until = 0.0

    @property
    def ready(self) -> bool:
        """Whether the next statement should run here."""
        return time.monotonic() >= self._threads_until

    async def execute_fetchall(
        self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] = ()
    ) -> list[Any]:
        connection = self._connection or self._open()
        disk_reads = _disk_reads()
        started = time.perf_counter()
        try:
            rows = connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:  # locked, busy, I/O, a replaced file: the threads decide
            self.close()  # opened afresh after the cool-down
            self._back_to_threads(f"{type(error).__name__}: {error}")
            raise InlineUnavailable() from error
        elapsed = time.perf_counter() - started
        if _disk_reads() > disk_reads:
            self._back_to_threads("a statement read from the disk")
        elif elapsed > self._stall_seconds:
            self._back_to_threads(f"a statement took {elapsed * 1000:.1f} ms")
        return rows

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _open(self) -> sqlite3.Connection:
        try:
            # `timeout=0`: a lock is answered at once, never waited for on the loop.
            uri = Path(self._path).absolute().as_uri() + "?mode=ro"  # `?`, `#`, `%` escaped
            connection = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
        except sqlite3.Error as error:  # not created yet, not readable: the threads answer
            self._back_to_threads(f"cannot open {self._path} read-only: {error}")
            raise InlineUnavailable() from error
        self._connection = connection
        return connection

    def _back_to_threads(self, why: str) -> None:
        self._threads_until = time.monotonic() + self._cool_down_seconds
        logger.warning(
            "SQLite hot statements run on threads for {} s: {}", self._cool_down_seconds, why
        )
