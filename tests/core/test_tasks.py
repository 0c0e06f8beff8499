"""Background loops stop when their owner closes them, even when the Redis client reports the
cancellation as an error of its own (src/core/tasks.py). Fakes stand in for redis-py: the
race that makes it do so (a socket timeout expiring with the cancellation) cannot be timed."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import TimeoutError as RedisTimeoutError

from src.core.cache.backends import MemoryBackend
from src.core.cache.near import InvalidationSubscriber, LocalTier
from src.core.cache.policy import Cache
from src.middleware.rate_counter import RateCounter

HOUR = 3600


async def _returns_within(seconds: float, closing: Any) -> None:
    """`closing` returns by itself within `seconds` (not cut short: a cancellation would end
    the very wait under test)."""
    task = asyncio.ensure_future(closing)
    await asyncio.wait([task], timeout=seconds)
    if not task.done():
        task.cancel()
        raise AssertionError(f"close() still waiting after {seconds}s")
    task.result()


class _SwallowsItsCancellation:
    """An awaitable Redis call that, cancelled while it waits, raises a Redis timeout instead
    of `CancelledError` — once; after that it answers at once."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.swallowed = 0

    async def call(self, answer: Any) -> Any:
        if self.swallowed:
            return answer
        self.waiting.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.swallowed += 1
            raise RedisTimeoutError("Timeout reading from socket") from None
        return answer


class _Pipeline:
    def __init__(self, call: _SwallowsItsCancellation) -> None:
        self._call = call
        self._answers: list[Any] = []

    async def __aenter__(self) -> _Pipeline:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    def incrby(self, _key: str, amount: int) -> None:
        self._answers.append(amount)

    def expire(self, _key: str, _seconds: int) -> None:
        self._answers.append(True)

    def get(self, _key: str) -> None:
        self._answers.append(None)

    async def execute(self) -> list[Any]:
        answers: list[Any] = await self._call.call(self._answers)
        return answers


class _Redis:
    def __init__(self) -> None:
        self.call = _SwallowsItsCancellation()

    def pipeline(self, transaction: bool = True) -> _Pipeline:
        return _Pipeline(self.call)


async def test_closing_the_rate_counter_ends_its_sync_even_when_the_cancellation_is_swallowed() -> (
    None
):
    redis = _Redis()
    counter = RateCounter(redis, "p:", 0.01)  # type: ignore[arg-type]
    counter.start()
    task = counter._task
    assert task is not None
    counter.hit("default", 10, HOUR, "ip:a")
    await asyncio.wait_for(redis.call.waiting.wait(), 5)  # the sync waits on "Redis"

    await _returns_within(3, counter.close())

    assert redis.call.swallowed == 1
    assert task.done()


class _SwallowingBackend(MemoryBackend):
    """Invalidations that never get through: each attempt waits, and a cancellation while it
    waits comes out as a Redis timeout."""

    def __init__(self) -> None:
        super().__init__(max_entries=10, max_bytes=1 << 20)
        self.call = _SwallowsItsCancellation()
        self.down = True

    async def invalidate(self, keys: tuple[str, ...], generations: tuple[str, ...]) -> None:
        if self.down:
            raise ConnectionRefusedError("cache down")
        await self.call.call(None)
        raise RedisTimeoutError("still failing")


async def test_closing_the_cache_ends_its_retrier_even_when_the_cancellation_is_swallowed() -> None:
    backend = _SwallowingBackend()
    cache = Cache(
        backend, name="test", count=lambda *_: None, count_error=lambda _: None, retry_after=0
    )
    await cache.invalidate("k")  # undelivered: the retrier takes it over
    retrier = cache._retrier
    assert retrier is not None
    backend.down = False
    await asyncio.wait_for(backend.call.waiting.wait(), 5)  # the retrier waits on "Redis"

    await _returns_within(3, cache.close())

    assert backend.call.swallowed == 1
    assert retrier.done()


class _PubSub:
    """Subscribed at once; a cancelled wait for a message is answered as "no message", as
    redis-py's timed read may."""

    def __init__(self) -> None:
        self.subscribed = asyncio.Event()
        self._confirmed = False

    async def subscribe(self, _channel: str) -> None:
        return None

    async def get_message(self, timeout: float) -> dict[str, Any] | None:
        if not self._confirmed:
            self._confirmed = True
            return {"type": "subscribe"}
        self.subscribed.set()
        try:
            await asyncio.sleep(timeout)
        except asyncio.CancelledError:
            return None
        return None

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class _PubSubClient:
    def __init__(self) -> None:
        self.pubsub_ = _PubSub()

    def pubsub(self) -> _PubSub:
        return self.pubsub_


async def test_closing_the_invalidation_subscriber_ends_it_at_once_when_a_read_swallows_it() -> (
    None
):
    client = _PubSubClient()
    tier = LocalTier(10, 1 << 20, 60)
    subscriber = InvalidationSubscriber(client, "c", tier)  # type: ignore[arg-type]
    subscriber.start()
    task = subscriber._task
    assert task is not None
    await asyncio.wait_for(client.pubsub_.subscribed.wait(), 5)
    assert tier.live

    await _returns_within(3, subscriber.close())

    assert task.done()  # not merely given up on by close()'s bounded wait
    assert not tier.live
