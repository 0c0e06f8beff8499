"""The embedded default (no Redis): the serve process delivers events from the outbox table.

One task per process. It makes a pass at most every `poll_seconds` (200 ms), and at once when
a local commit recorded events (the recorder wakes it). A pass reads the oldest undelivered
rows in position order and applies each (src/core/outbox/delivery.py), then marks it
delivered; delivered rows are purged after a short retention.

A row whose handler raised is tried again on a later pass, after a growing pause, up to
`max_attempts` times (a failure that is only the database's, unreachable or timed out, uses
no attempt); then it is dead-lettered: `dead_at` and its last error are recorded, it
is counted (`events_processed_total{outcome="dead_lettered"}`) and never tried again. While a
row waits for its retry, later rows of the same aggregate wait behind it (their order is
kept); rows of other aggregates go on.

On PostgreSQL several serve processes share the outbox: an advisory lock lets one of them
read it at a time (src/core/outbox/locks.py). `stop()` lets the current event finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from src.core.outbox import store
from src.core.outbox.delivery import EventApplier
from src.core.outbox.locks import ReaderLock, reader_lock
from src.core.tables import utcnow

PURGE_EVERY_SECONDS = 10.0
MARK_EVERY = 50


def retry_pause(attempts: int) -> dt.timedelta:
    """How long a failed event waits before its next attempt: 0.2 s, doubling, at most 30 s."""
    return dt.timedelta(seconds=min(0.2 * 2 ** (attempts - 1), 30.0))


class OutboxRunner:
    def __init__(
        self,
        engine: AsyncEngine,
        applier: EventApplier,
        *,
        max_attempts: int,
        poll_seconds: float = 0.2,
        batch_size: int = 200,
        lock: ReaderLock | None = None,
    ) -> None:
        self._engine = engine
        self._applier = applier
        self._max_attempts = max_attempts
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._lock = lock or reader_lock(engine)
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0

    @property
    def applier(self) -> EventApplier:
        return self._applier

    def wake(self) -> None:
        """Make a pass now (a local commit recorded events)."""
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="outbox-runner")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current event; cancel only if that takes longer than `timeout`."""
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._lock.release()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wakeup.clear()
            full = False
            try:
                if await self._lock.hold():
                    read, applied = await self.run_once()
                    full = read >= self._batch_size and applied > 0
                    if loop.time() - self._last_purge > PURGE_EVERY_SECONDS:
                        self._last_purge = loop.time()
                        await store.purge(self._engine)
            except Exception:  # the database is down: try again at the next poll
                logger.opt(exception=True).warning("outbox pass failed")
            if full or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_seconds)

    async def run_once(self) -> tuple[int, int]:
        """One pass over the oldest undelivered rows; how many it read, and applied.

        Delivered rows are marked together at the end of the pass (and every
        `MARK_EVERY` rows): one write transaction for many events — on SQLite the write lock
        is what requests wait for. A crash before the mark only redelivers those rows, which
        the handlers see as duplicates.
        """
        rows = await store.undelivered(self._engine, self._batch_size)
        if rows:  # what is pending while this pass runs (a short batch is all there is)
            backlog = len(rows)
            if backlog >= self._batch_size:
                backlog = await store.count_undelivered(self._engine)
            self._applier.observer.pending(backlog)
        applied_count = 0
        delivered: list[int] = []
        now = utcnow()
        waiting: set[str] = set()  # aggregates with an earlier row not delivered yet
        try:
            for row in rows:
                if self._stopping:
                    break
                aggregate = row.aggregate_id
                if aggregate is not None and aggregate in waiting:
                    continue
                if row.next_attempt_at is not None and row.next_attempt_at > now:
                    if aggregate is not None:
                        waiting.add(aggregate)
                    continue
                envelope = store.envelope_of(row)
                applied = await self._applier.apply(envelope)
                applied_count += 1
                if applied.ok:
                    delivered.append(row.position)
                    if len(delivered) >= MARK_EVERY:
                        await store.mark_delivered(self._engine, delivered)
                        delivered = []
                    continue
                if applied.transient:  # the database went away: not the event's attempt
                    if aggregate is not None:
                        waiting.add(aggregate)
                    continue
                attempts = row.attempts + 1
                dead = attempts >= self._max_attempts
                await store.mark_failed(
                    self._engine,
                    row.position,
                    attempts,
                    applied.reason,
                    dead=dead,
                    retry_at=None if dead else utcnow() + retry_pause(attempts),
                )
                if dead:
                    self._applier.dead_lettered(envelope, applied)
                elif aggregate is not None:
                    waiting.add(aggregate)
        finally:
            await store.mark_delivered(self._engine, delivered)
        if rows:
            self._applier.observer.pending(await store.count_undelivered(self._engine))
        else:
            self._applier.observer.pending(0)
        return len(rows), applied_count
