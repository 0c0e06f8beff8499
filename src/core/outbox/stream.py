"""With Redis: the relay (outbox → the stream `<prefix>events`) and the consumer group that
`inkwell worker` processes form.

Relay. One process at a time (src/core/outbox/locks.py: an advisory lock on PostgreSQL, a
Redis lease on SQLite) reads the undelivered outbox rows in position order, XADDs them (one
pipelined round trip per batch) and only then marks them delivered. A crash between the XADD
and the mark relays those rows again on the next pass: duplicated entries, which handlers
deduplicate. While Redis is down the relay's passes fail and the outbox grows; commands are
not affected, and the relay resumes when Redis is back. Entries every consumer has
acknowledged are trimmed from the stream.

Consumer. Each worker reads with XREADGROUP as one consumer of the group, applies each entry
(src/core/outbox/delivery.py) and XACKs it after the handlers' commits. Up to `concurrency`
entries are in flight, never two of one aggregate at once (entries of one aggregate are
applied in stream order, so within a worker per-aggregate order holds). An entry whose
handler fails stays pending; entries idle longer than `claim_seconds` — a failed one, or one
of a worker that died — are taken over with XAUTOCLAIM and tried again. An entry delivered
`max_attempts` times whose handler still fails (or delivered more often than that: a worker
crashing on it) goes to `<prefix>events:dead` with the reason, is acknowledged and counted
`dead_lettered`. A failure that is only the database's (unreachable, timed out) is not the
event's: after a pause the entry is put back at the end of the stream with a fresh delivery
count, so an outage never dead-letters events. `stop()` stops reading, lets in-flight
entries finish and acknowledges them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncEngine

from src.core.outbox import store
from src.core.outbox.delivery import Applied, Envelope, EventApplier
from src.core.outbox.locks import ReaderLock
from src.core.tables import utcnow

GROUP = "workers"
# How long a worker waits before retrying an event whose handler met an unavailable database.
REQUEUE_PAUSE_SECONDS = 1.0
TRIM_EVERY_SECONDS = 10.0


def stream_key(prefix: str) -> str:
    return f"{prefix}events"


def dead_stream_key(prefix: str) -> str:
    return f"{prefix}events:dead"


def entry_of(row: Any) -> dict[str, str]:
    """A stream entry's fields for an outbox row."""
    fields = {
        "event_id": str(row.event_id),
        "type": row.event_type,
        "payload": json.dumps(row.payload, separators=(",", ":")),
        "committed_at": row.committed_at.isoformat(),
        "position": str(row.position),
    }
    for name in ("aggregate_id", "traceparent", "tracestate"):
        value = getattr(row, name)
        if value:
            fields[name] = value
    return fields


def envelope_of_entry(fields: dict[bytes, bytes]) -> Envelope:
    text = {key.decode(): value.decode() for key, value in fields.items()}
    return Envelope(
        event_id=uuid.UUID(text["event_id"]),
        event_type=text["type"],
        aggregate_id=text.get("aggregate_id"),
        payload=json.loads(text["payload"]),
        committed_at=dt.datetime.fromisoformat(text["committed_at"]),
        traceparent=text.get("traceparent"),
        tracestate=text.get("tracestate"),
        position=int(text["position"]) if "position" in text else None,
    )


class Relay:
    def __init__(
        self,
        engine: AsyncEngine,
        redis: Redis,
        prefix: str,
        lock: ReaderLock,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.2,
    ) -> None:
        self._engine = engine
        self._redis = redis
        self._stream = stream_key(prefix)
        self._lock = lock
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False
        self._last_trim = 0.0
        self.relayed = 0

    async def run_once(self) -> int:
        """Relay one batch (when this process holds the lock); how many rows it relayed."""
        if not await self._lock.hold():
            return 0
        rows = await store.undelivered(self._engine, self._batch_size)
        if not rows:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.xadd(self._stream, entry_of(row))  # type: ignore[arg-type]
            await pipe.execute()
        await store.mark_delivered(self._engine, [row.position for row in rows])
        self.relayed += len(rows)
        return len(rows)

    async def run(self) -> None:
        self._running = True
        try:
            await self._loop()
        finally:
            self._stopped.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        failing = False
        while not self._stopping.is_set():
            relayed = 0
            try:
                relayed = await self.run_once()
                if loop.time() - self._last_trim > TRIM_EVERY_SECONDS:
                    self._last_trim = loop.time()
                    await self._trim()
                    await store.purge(self._engine)
                if failing:
                    logger.info("the relay is moving the outbox to the stream again")
                failing = False
            except Exception as error:  # Redis or the database is down: the outbox waits
                if not failing:
                    logger.warning("the relay cannot move the outbox: {}", type(error).__name__)
                failing = True
            if relayed >= self._batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll_seconds)

    async def _trim(self) -> None:
        """Drop the entries every consumer has acknowledged (older than the oldest pending
        entry and than what the group has been handed)."""
        try:
            groups = await self._redis.xinfo_groups(self._stream)
        except ResponseError:  # no stream yet
            return
        group = next((g for g in groups if _text(g.get("name")) == GROUP), None)
        if group is None:
            return
        floor = _text(group.get("last-delivered-id"))
        summary = await self._redis.xpending(self._stream, GROUP)
        oldest = summary.get("min") if summary else None
        if oldest:
            floor = min(floor, _text(oldest), key=_entry_order)
        if floor and floor != "0-0":
            await self._redis.xtrim(self._stream, minid=floor, approximate=True)

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the pass under way finish (its rows marked), then give the lock up."""
        self._stopping.set()
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout)
        await self._lock.release()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _entry_order(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


class Consumer:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        applier: EventApplier,
        *,
        max_attempts: int,
        claim_seconds: float,
        concurrency: int = 16,
        name: str | None = None,
    ) -> None:
        self._redis = redis
        self._stream = stream_key(prefix)
        self._dead = dead_stream_key(prefix)
        self._applier = applier
        self._max_attempts = max_attempts
        self._claim_ms = max(int(claim_seconds * 1000), 1)
        self._claim_every = min(max(claim_seconds / 2, 0.1), 5.0)
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self.name = name or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._stopping = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._group_ready = False
        self._running = False
        self._stopped = asyncio.Event()
        self.handled = 0

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    async def run(self) -> None:
        self._running = True
        try:
            await self._loop()
        finally:
            self._stopped.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_claim = 0.0
        failing = False
        while not self._stopping.is_set():
            try:
                if not self._group_ready:
                    await self.ensure_group()
                if loop.time() >= next_claim:
                    next_claim = loop.time() + self._claim_every
                    await self._claim()
                await self._read(block_ms=int(min(self._claim_every, 1.0) * 1000))
                if failing:
                    logger.info("the event consumer is reading the stream again")
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis is down: wait and read again
                if not failing:
                    logger.warning("the event consumer cannot read: {}", type(error).__name__)
                failing = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)

    async def _free_slots(self) -> int:
        # Wait for at least one slot, so a full worker does not read what it cannot start.
        await self._slots.acquire()
        self._slots.release()
        return max(self._concurrency - len(self._in_flight), 1)

    async def _read(self, block_ms: int) -> None:
        count = await self._free_slots()
        if self._stopping.is_set():
            return
        answer: Any = await self._redis.xreadgroup(
            GROUP, self.name, {self._stream: ">"}, count=count, block=block_ms
        )
        for _stream, entries in answer or ():
            for entry_id, fields in entries:
                await self._start(_text(entry_id), fields, deliveries=None)

    async def _claim(self) -> None:
        """Take over entries idle longer than `claim_seconds` (a dead worker's, or failed)."""
        start = "0-0"
        while True:
            answer: Any = await self._redis.xautoclaim(
                self._stream, GROUP, self.name, self._claim_ms, start_id=start, count=100
            )
            start, entries = _text(answer[0]), answer[1]
            for entry_id, fields in entries:
                if fields is None:  # trimmed meanwhile
                    continue
                key = _text(entry_id)
                if key in self._in_flight:  # still running here: not idle, only slow
                    continue
                await self._start(key, fields, deliveries=await self._deliveries(key))
            if start == "0-0" or not entries:
                return

    async def _deliveries(self, entry_id: str) -> int:
        pending = await self._redis.xpending_range(
            self._stream, GROUP, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    async def _start(
        self, entry_id: str, fields: dict[bytes, bytes], deliveries: int | None
    ) -> None:
        await self._slots.acquire()
        aggregate = _text(fields.get(b"aggregate_id")) or None
        before = self._tails.get(aggregate) if aggregate else None
        task = asyncio.create_task(self._process(entry_id, fields, deliveries, before))
        self._in_flight[entry_id] = task
        if aggregate:
            self._tails[aggregate] = task

        def finished(done: asyncio.Task[None]) -> None:
            self._slots.release()
            self._in_flight.pop(entry_id, None)
            if aggregate and self._tails.get(aggregate) is done:
                del self._tails[aggregate]

        task.add_done_callback(finished)

    async def _process(
        self,
        entry_id: str,
        fields: dict[bytes, bytes],
        deliveries: int | None,
        before: asyncio.Task[None] | None,
    ) -> None:
        if before is not None:  # the previous entry of the same aggregate goes first
            with contextlib.suppress(BaseException):
                await asyncio.shield(before)
        try:
            envelope = envelope_of_entry(fields)
        except (KeyError, ValueError) as error:
            await self._dead_letter(entry_id, fields, f"malformed entry: {error!r}", None, None)
            return
        if deliveries is not None and deliveries > self._max_attempts:
            # Delivered this often without an answer: a worker died on it each time.
            reason = f"delivered {deliveries} times without completing"
            await self._dead_letter(entry_id, fields, reason, envelope, Applied({}))
            return
        applied = await self._applier.apply(envelope)
        if applied.ok:
            await self._with_retries(lambda: self._redis.xack(self._stream, GROUP, entry_id))
            self.handled += 1
            return
        try:
            if applied.transient:
                await self._requeue(entry_id, fields)
                return
            if deliveries is None:
                deliveries = await self._deliveries(entry_id)
            if deliveries >= self._max_attempts:
                await self._dead_letter(entry_id, fields, applied.reason, envelope, applied)
            # else: left pending; claimed again once idle for `claim_seconds`
        except Exception as error:  # Redis went away too: the entry stays pending
            logger.bind(entry_id=entry_id).warning(
                "failed entry left pending: {}", type(error).__name__
            )

    async def _requeue(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        """A dependency was down (not the event's fault): after a pause, put a fresh copy at
        the end of the stream and acknowledge this one, so an outage never counts towards
        `max_attempts` (which counts deliveries)."""
        await asyncio.sleep(REQUEUE_PAUSE_SECONDS)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._stream, fields)  # type: ignore[arg-type]
            pipe.xack(self._stream, GROUP, entry_id)
            await pipe.execute()

    async def _dead_letter(
        self,
        entry_id: str,
        fields: dict[bytes, bytes],
        reason: str,
        envelope: Envelope | None,
        applied: Applied | None,
    ) -> None:
        dead: dict[Any, Any] = {
            **fields,
            b"entry_id": entry_id.encode(),
            b"reason": reason[:2000].encode(),
            b"dead_at": utcnow().isoformat().encode(),
        }

        async def move() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(self._dead, dead)
                pipe.xack(self._stream, GROUP, entry_id)
                await pipe.execute()

        if not await self._with_retries(move):
            return  # still pending: dead-lettered on a later claim
        if envelope is not None and applied is not None:
            self._applier.dead_lettered(
                envelope, applied if applied.failures else Applied({"(worker)": reason})
            )
        else:
            logger.bind(entry_id=entry_id).error("stream entry dead-lettered: {}", reason)

    async def _with_retries(self, call: Callable[[], Awaitable[Any]]) -> bool:
        """An acknowledgement after the commit: retried briefly; if Redis stays away the
        entry stays pending and its redelivery is a duplicate (a no-op)."""
        for attempt in range(3):
            try:
                await call()
                return True
            except Exception as error:
                if attempt == 2:
                    logger.warning(
                        "acknowledgement failed, the entry will be redelivered: {}",
                        type(error).__name__,
                    )
                    return False
                await asyncio.sleep(0.2 * (attempt + 1))
        return False

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop reading (a read under way returns within a second); let the entries in
        flight finish and be acknowledged."""
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout)
        tasks = list(self._in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0.1))

    async def pending(self) -> int:
        """Entries of the group not yet acknowledged, and not yet handed out."""
        try:
            groups = await self._redis.xinfo_groups(self._stream)
        except ResponseError:
            return 0
        for group in groups:
            if _text(group.get("name")) == GROUP:
                return int(group.get("pending") or 0) + int(group.get("lag") or 0)
        return 0
