"""The cache port and its two adapters: Redis (shared) and in-process (embedded default).

Cache-aside with two guards against serving a value older than the last committed write:

* **Fill tokens** (single items). On a miss the reader first *reserves* the key (a random
  token stored beside it), then reads the database, then *fills* the key only if its token is
  still there. A writer's after-commit `invalidate()` deletes the value and the token, so a
  reader that read the row before the write can no longer store it.
* **Single flight, ended by invalidations.** Concurrent misses on one key in this process share
  one load. An invalidation of the key ends that load's right to answer readers that come
  later: it is detached at once (a reader arriving after the invalidation starts a new load),
  and readers that had joined it load again when its fill was refused or the key was
  invalidated while it ran (a write from another process is only seen as the refused fill).
  The load's own caller still gets its value: its request began before the write.
* **Generations** (lists). List keys embed a generation number; writers `bump()` it after
  commit. A reader that loaded an old page stores it under the old generation, which nobody
  reads any more. No key scanning, ever.

When Redis is unreachable the cache degrades to "always miss" (the database serves reads);
after a failure it is not tried again for `retry_after` seconds, so an outage costs at most
one timeout per interval. An invalidation that could not be delivered is remembered; until it
has been delivered, this process bypasses the cache, so no stale entry is served once Redis
returns. A background task retries it every `retry_after` seconds, so other processes sharing
Redis stop serving the old entry within about a second of Redis returning, even when the
writing process gets no further traffic.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from loguru import logger
from redis.exceptions import RedisError

from src.core.cache.near import LocalTier
from src.core.cache.port import CacheBackend, CacheStatus
from src.core.tasks import cancel_and_wait, raise_if_cancelling

R = TypeVar("R")
_BYPASS: Any = object()  # `_look_up`'s answer when the cache cannot be used


CacheCounter = Callable[[str, str], None]


@dataclass
class _PendingInvalidation:
    keys: set[str]
    generations: set[str]


@dataclass(frozen=True, slots=True)
class _Loaded:
    value: bytes | None
    current: bool  # no invalidation of the key was seen while it loaded


@dataclass(slots=True)
class _Flight:
    """One in-flight load of a key, and whether an invalidation has overtaken it."""

    answer: asyncio.Future[_Loaded]
    overtaken: bool = False


class Cache:
    """Cache-aside over a backend, with fill tokens, generations, single flight and fail-open."""

    def __init__(
        self,
        backend: CacheBackend,
        *,
        name: str,
        count: CacheCounter,
        count_error: Callable[[str], None],
        retry_after: float = 1.0,
        fill_window: int = 30,
        reinvalidate_after: float = 0.0,
        local: LocalTier | None = None,
    ) -> None:
        self.backend = backend
        self.local = local
        self.kind = name
        self._count = count
        self._count_error = count_error
        self._retry_after = retry_after
        self._fill_window = fill_window
        self._down_until = 0.0
        self._pending = _PendingInvalidation(set(), set())
        self._flights: dict[str, _Flight] = {}
        self._retrier: asyncio.Task[None] | None = None
        self._reinvalidate_after = reinvalidate_after
        self._echoes: set[asyncio.Task[None]] = set()

    # --- reads --------------------------------------------------------------------------

    async def get_or_load(
        self, cache: str, key: str, ttl: int, load: Callable[[], Awaitable[bytes | None]]
    ) -> tuple[bytes | None, CacheStatus]:
        """The cached bytes for `key`, or `load()`'s (stored unless a write intervened).

        Concurrent misses on one key in this process share one `load()`. `None` from `load`
        (not found) is returned but never cached. A hit in Redis is kept in the local tier.
        """
        local, epoch = self._local_tier()
        if local is not None:
            held = local.get(key)
            if held is not None:
                self._count(cache + "_local", "hit")
                return held, "hit"
        found = await self._look_up(cache, self.backend.get, key)
        if found is _BYPASS:
            return await load(), "bypass"
        if found is not None:
            if local is not None:
                local.put(key, found, ttl, epoch)
            return found, "hit"
        return await self._single_flight(key, ttl, load, rejoin=True), "miss"

    async def peek(self, cache: str, key: str, ttl: int) -> bytes | None:
        """The cached bytes for `key` when they are there (a hit, counted), else None.

        For a reader that answers hits before the framework routes the request and leaves
        every other case — a miss, the cache unusable — to the full read (`get_or_load`),
        which counts the miss itself: a miss is never counted twice. Like `get_or_load`, it
        answers from the local tier first and keeps a Redis hit there.
        """
        local, epoch = self._local_tier()
        if local is not None:
            held = local.get(key)
            if held is not None:
                self._count(cache + "_local", "hit")
                return held
        value: bytes | None = await self._peek(cache, self.backend.get, key)
        if value is not None and local is not None:
            local.put(key, value, ttl, epoch)
        return value

    async def peek_versioned(
        self, cache: str, generation_key: str, key: str, ttl: int
    ) -> bytes | None:
        """`peek` for a generation-versioned key (see `get_versioned`)."""
        local, epoch = self._local_tier()
        local_key = generation_key + "|" + key
        if local is not None:
            held = local.get(local_key)
            if held is not None:
                self._count(cache + "_local", "hit")
                return held
        value: bytes | None = await self._peek(
            cache, self.backend.get_versioned, generation_key, key
        )
        if value is not None and local is not None:
            local.put(local_key, value, ttl, epoch, generation_key)
        return value

    async def _peek(self, cache: str, read: Callable[..., Awaitable[R]], *args: str) -> Any:
        if not await self._usable():
            return None
        try:
            found = await read(*args)
        except (RedisError, OSError) as error:
            self._failed("get", error)
            return None
        value = found[1] if isinstance(found, tuple) else found
        if value is not None:
            self._count(cache, "hit")
        return value

    async def _single_flight(
        self, key: str, ttl: int, load: Callable[[], Awaitable[bytes | None]], *, rejoin: bool
    ) -> bytes | None:
        flight = self._flights.get(key)
        if flight is not None:
            try:
                loaded = await asyncio.shield(flight.answer)
            except asyncio.CancelledError:
                if not flight.answer.cancelled():
                    raise  # this request itself was cancelled
                return await load()  # the flight's owner was: load for ourselves
            if loaded.current or not rejoin:
                return loaded.value
            # A write landed while that load ran, perhaps before this request began: its
            # value may be the one from before the write. Once more, with a load of our own
            # (or one that started after it). A second overtaken load is not waited out again:
            # it began after this request, so any write it missed is concurrent with it.
            return await self._single_flight(key, ttl, load, rejoin=False)
        flight = _Flight(asyncio.get_running_loop().create_future())
        self._flights[key] = flight
        try:
            value, current = await self._load_and_fill(key, ttl, load)
            flight.answer.set_result(_Loaded(value, current and not flight.overtaken))
            return value
        except asyncio.CancelledError:
            flight.answer.cancel()
            raise
        except BaseException as error:
            flight.answer.set_exception(error)
            flight.answer.exception()  # retrieved: a flight nobody joined must not warn
            raise
        finally:
            if self._flights.get(key) is flight:  # not detached by an invalidation
                del self._flights[key]

    def _local_tier(self) -> tuple[LocalTier | None, int]:
        """The local tier when it may answer (and the epoch a read from Redis begins in):
        never while Redis is failing or an invalidation is still undelivered."""
        local = self.local
        if local is None or not local.live or self._has_pending():
            return None, 0
        if self._down_until and time.monotonic() < self._down_until:
            return None, 0
        return local, local.epoch

    async def _look_up(self, cache: str, read: Callable[..., Awaitable[R]], *args: str) -> Any:
        """`read(*args)` from the backend, counting the hit or miss, or `_BYPASS` when the
        cache cannot be used now (down, or an invalidation still undelivered)."""
        if not await self._usable():
            self._count(cache, "miss")
            return _BYPASS
        try:
            found = await read(*args)
        except (RedisError, OSError) as error:
            self._failed("get", error)
            self._count(cache, "miss")
            return _BYPASS
        value = found[1] if isinstance(found, tuple) else found
        self._count(cache, "miss" if value is None else "hit")
        return found

    async def _load_and_fill(
        self, key: str, ttl: int, load: Callable[[], Awaitable[bytes | None]]
    ) -> tuple[bytes | None, bool]:
        """`load()`'s value, and whether the key's fill token survived the load (no write
        invalidated the key meanwhile, from this process or another)."""
        token = secrets.token_hex(8)
        try:
            await self.backend.reserve(key, token, self._fill_window)
        except (RedisError, OSError) as error:
            self._failed("reserve", error)
            return await load(), True
        value = await load()
        operation = "fill" if value is not None else "release"
        try:
            if value is not None:
                current = await self.backend.fill(key, token, value, ttl)
            else:  # nothing to store: give the token back rather than let it linger
                current = await self.backend.release(key, token)
        except (RedisError, OSError) as error:
            self._failed(operation, error)
            return value, True
        return value, current

    async def get_versioned(
        self,
        cache: str,
        generation_key: str,
        key: str,
        ttl: int,
        load: Callable[[], Awaitable[bytes]],
    ) -> tuple[bytes, CacheStatus]:
        """Like `get_or_load` for derived data (lists) invalidated by a generation number.

        The local tier keeps a page under its unversioned key, tagged with `generation_key`:
        a bump drops every page of that generation from it (the same message names both).
        """
        local, epoch = self._local_tier()
        local_key = generation_key + "|" + key
        if local is not None:
            held = local.get(local_key)
            if held is not None:
                self._count(cache + "_local", "hit")
                return held, "hit"
        found = await self._look_up(cache, self.backend.get_versioned, generation_key, key)
        if found is _BYPASS:
            return await load(), "bypass"
        full_key, value = found
        if value is not None:
            if local is not None:
                local.put(local_key, value, ttl, epoch, generation_key)
            return value, "hit"
        value = await load()
        try:
            await self.backend.set(full_key, value, ttl)
        except (RedisError, OSError) as error:
            self._failed("set", error)
        return value, "miss"

    # --- writes (after commit) ----------------------------------------------------------

    async def invalidate(self, *keys: str, generations: tuple[str, ...] = ()) -> None:
        """Drop `keys` and bump `generations`. Never raises; undelivered work is retried.

        With `reinvalidate_after` (reads served by a lagging replica) the same keys are
        invalidated once more that many seconds later: a reader that refilled them from a
        replica which had not yet replayed the write cannot keep the old value cached.

        A load already in flight for one of `keys` may have read the row before the write:
        it is detached first, so a read that starts from now on loads afresh instead of
        joining it (see `_single_flight` for the requests that had joined it).
        """
        await self._invalidate(keys, generations)
        if self._reinvalidate_after > 0:
            echo = asyncio.get_running_loop().create_task(self._echo(keys, generations))
            self._echoes.add(echo)
            echo.add_done_callback(self._echoes.discard)

    async def _echo(self, keys: tuple[str, ...], generations: tuple[str, ...]) -> None:
        await asyncio.sleep(self._reinvalidate_after)
        await self._invalidate(keys, generations)

    async def _invalidate(self, keys: tuple[str, ...], generations: tuple[str, ...]) -> None:
        if self.local is not None:  # this process's copy goes before the request answers
            self.local.drop(keys, generations)
        for key in keys:
            flight = self._flights.pop(key, None)
            if flight is not None:  # readers that come later must not get what it loads
                flight.overtaken = True
        self._pending.keys.update(keys)
        self._pending.generations.update(generations)
        if time.monotonic() >= self._down_until:
            await self._deliver_pending()
        if self._has_pending() and (self._retrier is None or self._retrier.done()):
            self._retrier = asyncio.get_running_loop().create_task(self._retry_pending())

    async def _retry_pending(self) -> None:
        """Deliver held invalidations as soon as the backend answers again."""
        while self._has_pending():
            await asyncio.sleep(max(self._down_until - time.monotonic(), 0.0) + 0.01)
            if time.monotonic() >= self._down_until and not await self._deliver_pending():
                raise_if_cancelling()  # perhaps close()'s cancellation, reported as an error

    def _has_pending(self) -> bool:
        return bool(self._pending.keys or self._pending.generations)

    async def close(self) -> None:
        """Stop retrying; one last delivery attempt for what is still held."""
        for echo in list(self._echoes):
            echo.cancel()
        if self._retrier is not None:
            await cancel_and_wait(self._retrier)
            self._retrier = None
        if self._has_pending():
            await self._deliver_pending()

    async def _deliver_pending(self) -> bool:
        if not (self._pending.keys or self._pending.generations):
            return True
        keys, generations = tuple(self._pending.keys), tuple(self._pending.generations)
        try:
            await self.backend.invalidate(keys, generations)
        except (RedisError, OSError) as error:
            self._failed("invalidate", error)
            return False
        self._pending.keys.difference_update(keys)
        self._pending.generations.difference_update(generations)
        return True

    async def _usable(self) -> bool:
        if self._down_until and time.monotonic() < self._down_until:
            return False
        if self._pending.keys or self._pending.generations:
            return await self._deliver_pending()
        return True

    def _failed(self, operation: str, error: BaseException) -> None:
        now = time.monotonic()
        if now >= self._down_until:
            logger.warning(
                "cache {} failed ({}): serving from the database for {}s",
                operation,
                type(error).__name__,
                self._retry_after,
            )
        self._down_until = now + self._retry_after
        self._count_error(operation)
