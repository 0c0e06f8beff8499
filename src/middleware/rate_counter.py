"""Local rate counting, synchronised with Redis in the background (no round trip per request).

Each process counts its hits per (policy, client, window) in memory and admits against what it
knows: the global count of the window as of the last synchronisation plus its own hits since.
Every `sync_every` seconds (`RATE_LIMIT_SYNC_SECONDS`) one pipelined round trip pushes the
hits counted since the last one (INCRBY on the window's key, with an expiry of two windows)
and reads back the global totals (INCRBY's answer), plus, once per new window, the previous
window's total for the sliding-window weight (as the `limits` library's sliding-window counter:
`floor(previous × (time left in the window / window)) + current`).

The price is an overshoot: another process's hit reaches Redis at its next sync and this
process at its own next one, so a process admits against a view of the others up to two
intervals (plus the round trip) old; across N processes a client may get through at most
`L + (N − 1) · min(L, ρ · (2T + δ))` requests in a window, where L is the limit, ρ the client's
request rate at each process, T the interval and δ the round trip (docs/api.md). Within one
process, and without Redis, the count is exact.

Without Redis, or while it is unreachable, each process counts on its own (a client's budget is
then at most N × L across N processes); nothing on the request path waits for Redis, so an
outage costs no latency and no error. Hits counted meanwhile are pushed when Redis returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from src.core.tasks import cancel_and_wait, raise_if_cancelling

_RETRY_AFTER_FAILURE = 1.0
_LOG_EVERY = 60.0


@dataclass(slots=True)
class _Window:
    """One client's count under one policy in one window."""

    seconds: int
    seen: int = 0  # the global total as of the last sync (our synced hits included)
    in_flight: int = 0  # pushed, answer not back yet
    unsynced: int = 0
    previous: int | None = None  # the previous window's global total, once fetched

    @property
    def total(self) -> int:
        return self.seen + self.in_flight + self.unsynced


WindowKey = tuple[str, str, int]  # (policy, client, window number)


class RateCounter:
    """Sliding-window counters per (policy, client), counted here and shared through Redis."""

    def __init__(
        self,
        redis: Redis | None,
        prefix: str,
        sync_every: float,
        *,
        on_error: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix + "ratelimit:"
        self._sync_every = sync_every
        self._on_error = on_error
        self._clock = clock
        self._windows: dict[WindowKey, _Window] = {}
        self._dirty: set[WindowKey] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_logged = 0.0
        self._next_forget = 0.0

    @property
    def tracked(self) -> int:
        return len(self._windows)

    def hit(self, name: str, amount: int, seconds: int, client: str) -> tuple[int, int]:
        """Count one request if admitted: (remaining after it, or -1 when refused; seconds
        until the window resets)."""
        now = self._clock()
        number = int(now // seconds)
        elapsed = now - number * seconds
        key = (name, client, number)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(seconds)
        before = self._windows.get((name, client, number - 1))
        previous = before.total if before is not None else (window.previous or 0)
        weighted = math.floor(previous * (seconds - elapsed) / seconds) + window.total
        reset = math.ceil(seconds - elapsed)
        if weighted + 1 > amount:
            return -1, reset
        window.unsynced += 1
        if self._redis is not None:
            self._dirty.add(key)
        return amount - weighted - 1, reset

    # --- the background task -------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        with contextlib.suppress(RedisError, OSError):
            await self.sync()  # what is counted but not pushed yet

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._sync_every)
            try:
                await self.sync()
            except (RedisError, OSError) as error:
                raise_if_cancelling()  # perhaps close()'s cancellation, reported as an error
                self._failed(error)
                await asyncio.sleep(_RETRY_AFTER_FAILURE)

    async def sync(self) -> None:
        """Push the hits counted since the last sync and read the global totals back."""
        self._forget_old()
        if self._redis is None or not self._dirty:
            return
        batch = [(key, self._windows[key]) for key in self._dirty if key in self._windows]
        self._dirty.clear()
        fetches_previous: list[bool] = []
        async with self._redis.pipeline(transaction=False) as pipe:
            for (name, client, number), window in batch:
                pushed = window.unsynced
                window.in_flight += pushed
                window.unsynced = 0
                redis_key = self._key(name, window.seconds, client, number)
                pipe.incrby(redis_key, pushed)
                pipe.expire(redis_key, 2 * window.seconds)
                fetch = window.previous is None and (name, client, number - 1) not in self._windows
                if fetch:
                    pipe.get(self._key(name, window.seconds, client, number - 1))
                fetches_previous.append(fetch)
            try:
                answers = iter(await pipe.execute())
            except BaseException:
                for key, window in batch:  # pushed again next time (perhaps twice: stricter)
                    window.unsynced += window.in_flight
                    window.in_flight = 0
                    self._dirty.add(key)
                raise
        for (_, window), fetch in zip(batch, fetches_previous, strict=True):
            window.seen = int(next(answers))
            window.in_flight = 0
            next(answers)  # EXPIRE's
            if fetch:
                window.previous = int(next(answers) or 0)

    def _key(self, name: str, seconds: int, client: str, number: int) -> str:
        return f"{self._prefix}{name}:{seconds}:{client}:{number}"

    def _forget_old(self) -> None:
        """Windows before the previous one weigh nothing any more (looked for once a second:
        the walk is over every client seen)."""
        now = self._clock()
        if now < self._next_forget:
            return
        self._next_forget = now + 1.0
        stale = [
            key
            for key, window in self._windows.items()
            if key[2] < int(now // window.seconds) - 1 and key not in self._dirty
        ]
        for key in stale:
            del self._windows[key]

    def _failed(self, error: BaseException) -> None:
        self._on_error()
        now = time.monotonic()
        if now - self._last_logged >= _LOG_EVERY:
            self._last_logged = now
            logger.warning(
                "rate-limit sync with Redis failed ({}): counting locally", type(error).__name__
            )
