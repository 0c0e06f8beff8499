"""The cache port's guarantees, with a backend that fails on demand."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from src.core.cache.backends import ENTRY_OVERHEAD_BYTES, MemoryBackend, RedisBackend
from src.core.cache.policy import Cache
from src.core.cache.port import CacheBackend
from tests.conftest import RUN_ID, Backend


class FlakyBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__(max_entries=100, max_bytes=1 << 20)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionRefusedError("cache down")

    async def get(self, key: str) -> bytes | None:
        self._check()
        return await super().get(key)

    async def reserve(self, key: str, token: str, ttl: int) -> None:
        self._check()
        await super().reserve(key, token, ttl)

    async def invalidate(self, keys: tuple[str, ...], generations: tuple[str, ...]) -> None:
        self._check()
        await super().invalidate(keys, generations)


def make_cache(backend: CacheBackend) -> tuple[Cache, list[str]]:
    errors: list[str] = []
    cache = Cache(
        backend, name="test", count=lambda *_: None, count_error=errors.append, retry_after=0
    )
    return cache, errors


def loader(value: bytes) -> Callable[[], Awaitable[bytes | None]]:
    async def load() -> bytes | None:
        return value

    return load


@pytest.fixture
async def any_backend(backend: Backend) -> AsyncIterator[CacheBackend]:
    """The in-process backend on the sqlite run, the Redis one on the postgres run."""
    if backend.redis_url is None:
        yield MemoryBackend(10, 1 << 20)
        return
    client = Redis.from_url(backend.redis_url)
    try:
        yield RedisBackend(client, f"inkwell-test-{RUN_ID}:cache-unit:{uuid.uuid4().hex}:")
    finally:
        await client.aclose()


async def test_a_fill_that_raced_an_invalidation_is_discarded(any_backend: CacheBackend) -> None:
    cache, _ = make_cache(any_backend)

    async def load_then_write() -> bytes | None:
        # the row is read, then a writer commits and invalidates before the fill
        await cache.invalidate("k")
        return b"old"

    value, status = await cache.get_or_load("c", "k", 60, load_then_write)
    assert (value, status) == (b"old", "miss")
    value, status = await cache.get_or_load("c", "k", 60, loader(b"new"))
    assert (value, status) == (b"new", "miss")


async def test_reads_fail_open_to_the_loader() -> None:
    backend = FlakyBackend()
    cache, errors = make_cache(backend)
    backend.down = True
    assert await cache.get_or_load("c", "k", 60, loader(b"db")) == (b"db", "bypass")
    assert errors == ["get"]


async def test_an_undelivered_invalidation_keeps_the_cache_bypassed_until_delivered() -> None:
    backend = FlakyBackend()
    cache, _ = make_cache(backend)
    await cache.get_or_load("c", "k", 60, loader(b"v1"))
    assert await cache.get_or_load("c", "k", 60, loader(b"v1")) == (b"v1", "hit")
    backend.down = True
    await cache.invalidate("k")  # the write's invalidation is lost for now
    backend.down = False
    # back up: the stale entry must not be served
    assert await cache.get_or_load("c", "k", 60, loader(b"v2")) == (b"v2", "miss")


@pytest.mark.parametrize("entries", [1, 3])
async def test_memory_backend_is_bounded(entries: int) -> None:
    backend = MemoryBackend(entries, 1 << 20)
    for i in range(10):
        await backend.set(f"k{i}", b"x", 60)
    assert [await backend.get(f"k{i}") for i in range(10)].count(b"x") == entries


async def test_versioned_reads_follow_the_generation(any_backend: CacheBackend) -> None:
    cache, errors = make_cache(any_backend)
    first, status = await cache.get_versioned("list", "gen", "page", 60, loader(b"one"))
    assert (first, status) == (b"one", "miss")
    assert await cache.get_versioned("list", "gen", "page", 60, loader(b"two")) == (b"one", "hit")
    await cache.invalidate(generations=("gen",))
    assert await cache.get_versioned("list", "gen", "page", 60, loader(b"two")) == (b"two", "miss")
    assert await cache.get_versioned("list", "gen", "page", 60, loader(b"3")) == (b"two", "hit")
    assert errors == []


async def test_one_invalidation_of_thousands_of_keys_drops_every_one(backend: Backend) -> None:
    """An author's rename drops every cached item of theirs at once (more keys than the Redis
    backend sends in one round trip), their pending fills too, and bumps the lists."""
    many = 2_600
    if backend.redis_url is None:
        target: CacheBackend = MemoryBackend(many + 10, max_bytes=64 * 2**20)
        await _drop_all_with(target, many)
        return
    client = Redis.from_url(backend.redis_url)
    try:
        prefix = f"inkwell-test-{RUN_ID}:cache-bulk:{uuid.uuid4().hex}:"
        await _drop_all_with(RedisBackend(client, prefix), many)
        assert await client.exists(*(f"{prefix}k{i}:fill" for i in range(many))) == 0
    finally:
        await client.aclose()


async def _drop_all_with(target: CacheBackend, many: int) -> None:
    keys = tuple(f"k{i}" for i in range(many))
    for key in keys:
        await target.set(key, b"cached", 60)
    await target.reserve("pending", "token", 60)
    await target.set("unrelated", b"kept", 60)
    full_key, _ = await target.get_versioned("gen", "page")
    await target.set(full_key, b"old page", 60)
    await target.invalidate((*keys, "pending"), ("gen",))
    assert [await target.get(key) for key in keys] == [None] * many
    assert not await target.fill("pending", "token", b"stale", 60)
    assert await target.get("unrelated") == b"kept"
    assert (await target.get_versioned("gen", "page"))[1] is None


async def test_a_cancelled_flight_does_not_fail_the_requests_that_joined_it() -> None:
    cache, _ = make_cache(MemoryBackend(10, 1 << 20))
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow_load() -> bytes | None:
        started.set()
        await release.wait()
        return b"never"

    owner = asyncio.create_task(cache.get_or_load("c", "k", 60, slow_load))
    await started.wait()
    joiner = asyncio.create_task(cache.get_or_load("c", "k", 60, loader(b"fresh")))
    await asyncio.sleep(0)
    owner.cancel()
    assert await joiner == (b"fresh", "miss")
    with pytest.raises(asyncio.CancelledError):
        await owner


class Observed:
    """A backend wrapper that tells when a look-up has returned (the reader then decides, with
    no further wait, whether to join a flight)."""

    def __init__(self, inner: CacheBackend) -> None:
        self.inner = inner
        self.looked_up = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, key: str) -> bytes | None:
        value = await self.inner.get(key)
        self.looked_up.set()
        return value


def blocked_loader(
    value: bytes,
) -> tuple[Callable[[], Awaitable[bytes | None]], asyncio.Event, asyncio.Event]:
    """A load that has read `value` (the row as it was) and waits to be let go."""
    loading, release = asyncio.Event(), asyncio.Event()

    async def load() -> bytes | None:
        loading.set()
        await release.wait()
        return value

    return load, loading, release


async def test_readers_that_joined_a_load_overtaken_by_another_process_load_again(
    any_backend: CacheBackend,
) -> None:
    observed = Observed(any_backend)
    here, _ = make_cache(observed)  # type: ignore[arg-type]
    elsewhere, _ = make_cache(any_backend)  # another process sharing the backend
    old_row, loading, release = blocked_loader(b"old")
    before = asyncio.create_task(here.get_or_load("c", "k", 60, old_row))
    await loading.wait()
    await elsewhere.invalidate("k")  # a write committed through the other process
    observed.looked_up.clear()
    after = asyncio.create_task(here.get_or_load("c", "k", 60, loader(b"new")))
    await observed.looked_up.wait()  # it missed and has joined the flight in progress
    release.set()
    assert await before == (b"old", "miss")
    assert await after == (b"new", "miss")


async def test_a_miss_that_finds_nothing_leaves_no_fill_token(any_backend: CacheBackend) -> None:
    cache, errors = make_cache(any_backend)
    for i in range(50):
        assert await cache.get_or_load("c", f"missing:{i}", 60, loader(None)) == (None, "miss")
    assert errors == []
    if isinstance(any_backend, MemoryBackend):
        assert any_backend.fill_tokens == 0
    else:
        assert isinstance(any_backend, RedisBackend)
        client = any_backend._client
        assert [key async for key in client.scan_iter(match=any_backend._key("*:fill"))] == []


async def test_memory_fill_tokens_expire_and_are_bounded() -> None:
    now = [1000.0]
    backend = MemoryBackend(10, 1 << 20, max_tokens=3, clock=lambda: now[0])
    for i in range(10):
        await backend.reserve(f"k{i}", f"t{i}", 30)
    assert backend.fill_tokens == 3  # the oldest went first
    assert not await backend.fill("k0", "t0", b"v", 60)  # its load simply does not fill
    now[0] += 31
    assert not await backend.fill("k9", "t9", b"v", 60)  # expired
    await backend.reserve("fresh", "t", 30)
    assert backend.fill_tokens == 1
    assert await backend.fill("fresh", "t", b"v", 60)


async def test_memory_backend_is_bounded_by_bytes() -> None:
    backend = MemoryBackend(1000, max_bytes=10_000)
    for i in range(100):
        await backend.set(f"k{i:02}", b"x" * 1000, 60)
    assert backend.bytes_used <= 10_000
    assert backend.entries == 10_000 // (3 + 1000 + ENTRY_OVERHEAD_BYTES)
    assert await backend.get("k99") is not None  # the newest stay, the oldest went
    assert await backend.get("k00") is None
    await backend.set("huge", b"x" * 20_000, 60)
    assert await backend.get("huge") is None
    assert backend.bytes_used <= 10_000


async def test_a_read_after_an_invalidation_never_joins_an_older_flight() -> None:
    cache, _ = make_cache(MemoryBackend(10, 1 << 20))
    started, release = asyncio.Event(), asyncio.Event()

    async def load_before_the_write() -> bytes | None:
        started.set()
        await release.wait()
        return b"old"

    first = asyncio.create_task(cache.get_or_load("c", "k", 60, load_before_the_write))
    await started.wait()
    await cache.invalidate("k")  # a write commits while the first read is still loading
    second = asyncio.create_task(cache.get_or_load("c", "k", 60, loader(b"new")))
    await asyncio.sleep(0)
    release.set()
    assert await second == (b"new", "miss")
    assert await first == (b"old", "miss")
    assert await cache.get_or_load("c", "k", 60, loader(b"newer")) == (b"new", "hit")
