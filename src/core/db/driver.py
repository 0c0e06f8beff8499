"""Hot statements on the driver's own connection, where SQLAlchemy's per-statement cost
dominates.

A pooled primary-key read through SQLAlchemy Core costs several hundred µs of client CPU;
the same statement sent by asyncpg as a prepared statement costs a small fraction of that
(`loadtests/session_check.py`). `DriverConnections.run` hands the driver's connection of one
engine to the caller's function, and gives the round trip the CLIENT span the SQLAlchemy
instrumentation would have (it does not see the driver's own statements).

Checking a connection out of SQLAlchemy's pool and back in cost about 80 µs of CPU per
statement (greenlet hops, the pool's events, its queue) — more than the statement itself. So
a `DriverConnections` keeps the connections it used checked out between statements, for at
most `hold_seconds` idle (the engine's ping-after-idle window; the time idle here still counts
toward it once the connection is back in the pool) and at most `keep` of them (half the pool,
so the rest stays for everything else; a pool of one holds none). Statements that find all
`keep` busy wait for the next one given back rather than queueing on the pool. Idle ones go
back to the pool from a timer when no statement comes, and every connection goes back through
the pool's checkout at least every `MAX_HOLD_SECONDS` (where `pool_recycle` and the
invalidation after a disconnect apply). `db_pool_connections` counts held ones as idle.

asyncpg keeps a cache of prepared statements per connection, keyed by the SQL text, so the
same text is parsed and planned once per connection; sqlite3 does the same for its
statements. Only these two drivers have a fast path (`DRIVERS`); callers keep a SQLAlchemy
Core path for any other.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import asyncpg
from loguru import logger
from opentelemetry import trace
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from src.core.db.inline_sqlite import InlineSQLite, InlineUnavailable
from src.core.spans import child_span

tracer = trace.get_tracer(__name__)

T = TypeVar("T")

DRIVERS = frozenset({"asyncpg", "aiosqlite"})

# A connection goes back through the pool at least this often however busy it is kept.
MAX_HOLD_SECONDS = 30.0
_HELD_SINCE = "inkwell.held_since"
# Set on a connection checked in after idling here: since when it has been idle.
IDLE_SINCE = "inkwell.idle_since"

# Failures of the driver that mean the database is unreachable (a 503), not a bug.
_DRIVER_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    sqlite3.OperationalError,
)


class DriverConnections:
    """Driver connections of one engine for its hot statements, held between them.

    At most `keep` connections are used at once; a statement that finds them all busy waits
    for the next one given back (first come, first served; cheaper than the pool's queue, and
    at most `wait_seconds`, the pool's own timeout, after which it fails as the pool would).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        keep: int,
        hold_seconds: float,
        wait_seconds: float = 30.0,
        inline: InlineSQLite | None = None,
    ) -> None:
        self.engine = engine
        self._inline = inline
        self.driver = str(engine.dialect.driver)
        self._keep = keep
        self._hold_seconds = hold_seconds
        self._wait_seconds = wait_seconds
        # (when it was given back, connection), oldest first: the newest is taken first, so
        # the list stays in time order and what went stale is a prefix of it.
        self._idle: list[tuple[float, PoolProxiedConnection]] = []
        self._owned = 0  # idle + in use + being checked out
        # Each gets a connection given back, or None: a place came free, check one out.
        self._waiters: collections.deque[asyncio.Future[PoolProxiedConnection | None]] = (
            collections.deque()
        )
        self._trim_timer: asyncio.TimerHandle | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def _passing_through(self) -> bool:
        """Closed, or a pool too small to spare one: every statement checks out and in."""
        return self._closed or self._keep < 1

    @property
    def held(self) -> int:
        """Connections held idle for the next statement."""
        return len(self._idle)

    @property
    def in_use(self) -> int:
        """Connections checked out for a statement now (or being checked out)."""
        return self._owned - len(self._idle)

    async def run(
        self, run: Callable[[Any], Awaitable[T]], *, operation: str, collection: str
    ) -> T:
        """`run(driver_connection)` on one of this engine's connections, in a CLIENT span
        (on SQLite, on the loop's own read-only connection while its statements stay short:
        `src.core.db.inline_sqlite`).

        A connection that failed or was interrupted mid-statement is invalidated, never handed
        out again; a failure meaning the database is unreachable is raised as
        `ConnectionError` (answered 503 like SQLAlchemy's own), chained to the driver's error,
        and the idle connections are discarded too (their sockets are as suspect).
        """
        with child_span(
            tracer,
            f"{operation} {collection}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "db.system.name": self.engine.dialect.name,
                "db.operation.name": operation,
                "db.collection.name": collection,
            },
        ):
            if self._inline is not None and self._inline.ready:
                try:
                    return await run(self._inline)
                except InlineUnavailable:
                    pass  # on a pooled connection's thread, below
            return await self._run_pooled(run, operation, collection)

    async def _run_pooled(
        self, run: Callable[[Any], Awaitable[T]], operation: str, collection: str
    ) -> T:
        connection = await self._take()
        try:
            result = await run(connection.driver_connection)
        except BaseException as error:
            self._lost(1)
            await greenlet_spawn(connection.invalidate, error)
            if isinstance(error, _DRIVER_UNAVAILABLE):
                await self._discard_idle(error)
                unreachable = f"{operation} {collection}: the database could not be reached"
                raise ConnectionError(unreachable) from error
            raise
        if self._passing_through:  # straight back to the pool
            self._lost(1)
            await _check_in([(time.monotonic(), connection)])
        else:
            self._give_back(connection)
        return result

    async def close(self) -> None:
        """Hand every held connection back to the pool (before the engine is disposed);
        statements still running give theirs straight back to the pool."""
        self._closed = True
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None
        self._release(self._take_idle())
        while self._waiters:  # nothing will be given back to them now: the pool serves them
            self._hand_place(self._waiters.popleft())
        while self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)

    async def _take(self) -> PoolProxiedConnection:
        if self._idle and time.monotonic() - self._idle[-1][0] > self._hold_seconds:
            # Even the newest went stale (a lull the timer has not caught yet): all go back
            # to the pool, whose checkout pings a connection idle that long.
            self._release(self._take_idle())
        if self._idle:
            return self._idle.pop()[1]
        if self._owned >= self._keep and not self._passing_through:
            given = await self._wait()
            if given is not None:
                return given
            # else a place was kept for this statement (counted in `_owned`)
        else:
            self._owned += 1
        try:
            connection = await self.engine.raw_connection()
        except BaseException:
            self._lost(1)
            raise
        connection.info[_HELD_SINCE] = time.monotonic()
        return connection

    async def _wait(self) -> PoolProxiedConnection | None:
        waiter: asyncio.Future[PoolProxiedConnection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._wait_seconds):
                return await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                # Given something just as the wait ended: pass it on, never drop it.
                given = waiter.result()
                if given is not None:
                    self._give_back(given)
                else:
                    self._lost(1)  # the place kept for it
            else:
                waiter.cancel()
            if isinstance(error, TimeoutError):
                raise sa_exc.TimeoutError(
                    f"no connection for a hot statement within {self._wait_seconds} s"
                ) from error
            raise

    def _give_back(self, connection: PoolProxiedConnection) -> None:
        now = time.monotonic()
        held_since = connection.info.get(_HELD_SINCE, now)
        if self._passing_through or now - held_since > MAX_HOLD_SECONDS:
            # Back through the pool now and then, whose checkout applies `pool_recycle` and
            # the invalidation that follows a disconnect seen on another connection.
            self._lost(1)
            self._release([(now, connection)])
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append((now, connection))
        if self._trim_timer is None:
            self._trim_timer = asyncio.get_running_loop().call_later(self._hold_seconds, self._trim)

    def _hand_place(self, waiter: asyncio.Future[PoolProxiedConnection | None]) -> bool:
        """Keep a place for `waiter` (it checks out a connection of its own)."""
        if waiter.done():
            return False
        self._owned += 1
        waiter.set_result(None)
        return True

    def _lost(self, count: int) -> None:
        """`count` connections went back to the pool or were discarded: their places go to
        as many waiters, first come first served."""
        self._owned -= count
        while count and self._waiters:
            if self._hand_place(self._waiters.popleft()):
                count -= 1

    def _take_idle(self, count: int | None = None) -> list[tuple[float, PoolProxiedConnection]]:
        """The `count` oldest idle connections (all by default), no longer counted as ours."""
        count = len(self._idle) if count is None else count
        taken, self._idle = self._idle[:count], self._idle[count:]
        self._lost(len(taken))
        return taken

    def _release(self, idle: list[tuple[float, PoolProxiedConnection]]) -> None:
        """Check `idle` in to the pool, in the background (a request never waits for it)."""
        if idle:
            self._in_background(_check_in(idle))

    def _trim(self) -> None:
        """The timer: hand back what has been idle for `hold_seconds`; look again later."""
        self._trim_timer = None
        now = time.monotonic()
        stale = 0
        while stale < len(self._idle) and now - self._idle[stale][0] >= self._hold_seconds:
            stale += 1
        self._release(self._take_idle(stale))
        if self._idle:
            due = self._idle[0][0] + self._hold_seconds - now
            self._trim_timer = asyncio.get_running_loop().call_later(due, self._trim)

    async def _discard_idle(self, error: BaseException) -> None:
        for _, connection in self._take_idle():
            await greenlet_spawn(connection.invalidate, error)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)


async def _check_in(idle: list[tuple[float, PoolProxiedConnection]]) -> None:
    for idle_since, connection in idle:
        # The pool pings a connection idle for its window; idle here counts.
        connection.info[IDLE_SINCE] = idle_since
        try:
            await greenlet_spawn(connection.close)
        except Exception as error:  # the pool logs and discards a connection it cannot reset
            logger.warning("a held database connection could not be checked in: {}", error)
