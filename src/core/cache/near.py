"""The local tier: a bounded per-process copy of Redis's cached bytes, kept coherent by Redis.

With Redis, a cached read would otherwise cost a round trip per request. Each process keeps
the bytes it has recently read from Redis in a small LRU (`LocalTier`) and answers from it
while, and only while, its invalidation channel is up:

* Writers publish what they invalidated (keys dropped, list generations bumped) on
  `<REDIS_KEY_PREFIX>cache:invalidate`, in the same round trip as the DEL/INCR itself, so the
  message is never sent before Redis has forgotten the value. The writing process drops its
  own copy synchronously, before the request answers.
* Every process runs one `InvalidationSubscriber` on a dedicated connection; each message
  drops the named keys (and every list page of a bumped generation) from its tier.
* While the channel is down — not yet subscribed, disconnected, or reconnecting — the tier is
  bypassed (reads go to Redis as without it), and it is cleared when the subscription is
  confirmed again: messages sent meanwhile are lost, so nothing held before may be trusted.
* A read that started before an invalidation must not store what it read: every drop bumps
  `epoch`, and `put` stores only under the epoch its read began in. Messages arrive on another
  connection than the read's answer, so this is the only order that can be relied on.

Entries also expire after a short cap (`ttl_cap`), so a bug or a lost message costs seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from src.core.cache.backends import ENTRY_OVERHEAD_BYTES
from src.core.tasks import cancel_and_wait, raise_if_cancelling

CHANNEL_SUFFIX = "cache:invalidate"


def channel_name(prefix: str) -> str:
    return prefix + CHANNEL_SUFFIX


class LocalTier:
    """A bounded LRU (entries and bytes) of cached bytes, answering only while `live`."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        ttl_cap: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._ttl_cap = ttl_cap
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes, str | None]] = OrderedDict()
        self._by_generation: dict[str, set[str]] = {}
        self._bytes = 0
        self.live = False
        self.epoch = 0

    @property
    def entries(self) -> int:
        return len(self._entries)

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def get(self, key: str) -> bytes | None:
        if not self.live:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(
        self, key: str, value: bytes, ttl: float, epoch: int, generation: str | None = None
    ) -> None:
        """Keep `value` if nothing was invalidated since `epoch` (when its read began)."""
        if not self.live or epoch != self.epoch:
            return
        self._drop(key)
        cost = len(key) + len(value) + ENTRY_OVERHEAD_BYTES
        if cost > self._max_bytes:
            return
        self._entries[key] = (self._clock() + min(ttl, self._ttl_cap), value, generation)
        self._bytes += cost
        if generation is not None:
            self._by_generation.setdefault(generation, set()).add(key)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    def drop(self, keys: Iterable[str], generations: Iterable[str] = ()) -> None:
        self.epoch += 1
        for key in keys:
            self._drop(key)
        for generation in generations:
            for key in self._by_generation.pop(generation, set()):
                self._drop(key)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()
        self._by_generation.clear()
        self._bytes = 0

    def up(self) -> None:
        """The channel is (re)subscribed: start afresh, anything held may have missed a drop."""
        self.clear()
        self.live = True

    def down(self) -> None:
        self.live = False
        self.clear()

    def apply(self, message: bytes) -> None:
        try:
            decoded = json.loads(message)
            if decoded.get("all"):
                self.clear()
                return
            self.drop(decoded.get("keys", ()), decoded.get("generations", ()))
        except (ValueError, AttributeError, TypeError):
            self.clear()  # a message we cannot read may have named anything

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._bytes -= len(key) + len(entry[1]) + ENTRY_OVERHEAD_BYTES
        if entry[2] is not None:
            held = self._by_generation.get(entry[2])
            if held is not None:
                held.discard(key)


# A silent link (no reset, packets dropped) is noticed by a PING every `_PING_EVERY` seconds:
# nothing at all heard for `_SILENCE_LIMIT` seconds counts as down.
_PING_EVERY = 1.0
_SILENCE_LIMIT = 3.0


class InvalidationSubscriber:
    """One task per process: listens on the invalidation channel and keeps `tier.live` true
    only while subscribed."""

    def __init__(
        self, client: Redis, channel: str, tier: LocalTier, retry_after: float = 0.5
    ) -> None:
        self._client = client
        self._channel = channel
        self._tier = tier
        self._retry_after = retry_after
        self._task: asyncio.Task[None] | None = None
        self._logged_down = False
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._closed = True
        self._tier.down()
        if self._task is not None:
            # redis-py may turn the cancellation of a read into an error of its own: the flag
            # ends the loop then, and the wait is bounded either way.
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        while not self._closed:
            try:
                await self._listen()
            # Any failure of the channel (redis-py raises AttributeError, too, when a
            # connection is torn down under it) means the same: down, and subscribe again.
            except Exception as error:
                raise_if_cancelling()
                self._tier.down()
                if not self._logged_down:
                    self._logged_down = True
                    logger.warning(
                        "cache invalidation channel down ({}): local tier bypassed",
                        type(error).__name__,
                    )
            await asyncio.sleep(self._retry_after)

    async def _listen(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            heard = time.monotonic()
            suspect = False
            while True:
                message = await pubsub.get_message(timeout=_PING_EVERY)
                # redis-py may answer a cancellation of this wait as if it had timed out.
                raise_if_cancelling()
                if self._closed:
                    return
                now = time.monotonic()
                if message is None:
                    if now - heard > _SILENCE_LIMIT:
                        if suspect:
                            raise TimeoutError("no answer on the invalidation channel")
                        # The event loop may have been busy rather than the link silent:
                        # one more PING and wait before giving up.
                        suspect = True
                    await pubsub.ping()
                    continue
                heard, suspect = now, False
                kind = message.get("type")
                if kind == "subscribe":
                    self._tier.up()
                    if self._logged_down:
                        self._logged_down = False
                        logger.info("cache invalidation channel up: local tier in use")
                elif kind == "message":
                    self._tier.apply(message["data"])
        finally:
            self._tier.down()
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
