"""The local tier in front of Redis (src/core/cache/near.py), with fakes: its bounds, its
bypass while the invalidation channel is down, and its clearing when it comes back."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from src.core.cache.backends import ENTRY_OVERHEAD_BYTES, MemoryBackend
from src.core.cache.near import LocalTier
from src.core.cache.policy import Cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def live_tier(max_entries: int = 10, max_bytes: int = 1 << 20, ttl_cap: float = 5.0) -> LocalTier:
    tier = LocalTier(max_entries, max_bytes, ttl_cap)
    tier.up()
    return tier


def test_the_tier_keeps_at_most_max_entries_evicting_the_least_recently_used() -> None:
    tier = live_tier(max_entries=2)
    for key in ("a", "b"):
        tier.put(key, b"v", 60, tier.epoch)
    tier.get("a")  # now b is the least recently used
    tier.put("c", b"v", 60, tier.epoch)
    assert (tier.get("a"), tier.get("b"), tier.get("c")) == (b"v", None, b"v")


def test_the_tier_is_bounded_by_bytes() -> None:
    value = b"x" * 100
    cost = 1 + len(value) + ENTRY_OVERHEAD_BYTES
    tier = live_tier(max_bytes=2 * cost)
    for key in ("a", "b", "c"):
        tier.put(key, value, 60, tier.epoch)
    assert tier.entries == 2
    assert tier.bytes_used == 2 * cost
    tier.put("d", b"y" * (3 * cost), 60, tier.epoch)  # larger than the whole tier
    assert tier.get("d") is None


def test_entries_expire_after_the_ttl_cap_even_when_the_cache_ttl_is_longer() -> None:
    clock = Clock()
    tier = LocalTier(10, 1 << 20, ttl_cap=5.0, clock=clock)
    tier.up()
    tier.put("a", b"v", 600, tier.epoch)
    clock.now += 5.5
    assert tier.get("a") is None


def test_while_the_channel_is_down_the_tier_neither_answers_nor_stores() -> None:
    tier = LocalTier(10, 1 << 20, 5.0)  # not yet subscribed
    tier.put("a", b"v", 60, tier.epoch)
    assert tier.get("a") is None
    tier.up()
    tier.put("a", b"v", 60, tier.epoch)
    tier.down()
    assert tier.get("a") is None


def test_resubscribing_clears_what_was_held_before() -> None:
    tier = live_tier()
    tier.put("a", b"old", 60, tier.epoch)
    tier.live = False  # the link dropped; messages sent meanwhile were lost
    tier.up()
    assert tier.get("a") is None
    assert tier.entries == 0


def test_a_read_that_began_before_an_invalidation_does_not_store_its_value() -> None:
    tier = live_tier()
    began = tier.epoch
    tier.apply(json.dumps({"keys": ["a"], "generations": []}).encode())
    tier.put("a", b"read before the write", 60, began)
    assert tier.get("a") is None


def test_a_generation_bump_drops_every_page_of_that_generation_only() -> None:
    tier = live_tier()
    tier.put("lists|page1", b"p1", 60, tier.epoch, "lists")
    tier.put("lists|page2", b"p2", 60, tier.epoch, "lists")
    tier.put("item", b"i", 60, tier.epoch)
    tier.apply(json.dumps({"keys": [], "generations": ["lists"]}).encode())
    assert (tier.get("lists|page1"), tier.get("lists|page2"), tier.get("item")) == (
        None,
        None,
        b"i",
    )


def test_a_message_that_cannot_be_read_clears_the_tier() -> None:
    tier = live_tier()
    tier.put("a", b"v", 60, tier.epoch)
    tier.apply(b"not json")
    assert tier.get("a") is None


def _counting_cache(tier: LocalTier) -> tuple[Cache, MemoryBackend, list[tuple[str, str]]]:
    counts: list[tuple[str, str]] = []
    backend = MemoryBackend(10, 1 << 20)
    cache = Cache(
        backend,
        name="test",
        count=lambda cache, result: counts.append((cache, result)),
        count_error=lambda _: None,
        local=tier,
    )
    return cache, backend, counts


def _value(value: bytes) -> Callable[[], Awaitable[bytes | None]]:
    async def load() -> bytes | None:
        return value

    return load


async def test_a_hit_in_the_shared_cache_is_then_answered_locally_and_counted_as_local() -> None:
    cache, backend, counts = _counting_cache(live_tier())
    await backend.set("k", b"shared", 60)
    assert await cache.get_or_load("content", "k", 60, _value(b"db")) == (b"shared", "hit")
    await backend.set("k", b"changed behind its back", 60)  # proves the next answer is local
    assert await cache.get_or_load("content", "k", 60, _value(b"db")) == (b"shared", "hit")
    assert counts == [("content", "hit"), ("content_local", "hit")]


async def test_with_the_channel_down_reads_go_to_the_shared_cache() -> None:
    tier = live_tier()
    cache, backend, _ = _counting_cache(tier)
    await backend.set("k", b"old", 60)
    await cache.get_or_load("content", "k", 60, _value(b"db"))
    tier.down()
    await backend.set("k", b"new", 60)  # a write whose message this process missed
    assert await cache.get_or_load("content", "k", 60, _value(b"db")) == (b"new", "hit")


async def test_the_writing_process_drops_its_own_copy_before_answering() -> None:
    cache, backend, _ = _counting_cache(live_tier())
    await backend.set("k", b"old", 60)
    await cache.get_or_load("content", "k", 60, _value(b"db"))
    await cache.invalidate("k")
    assert await cache.get_or_load("content", "k", 60, _value(b"new")) == (b"new", "miss")


async def test_a_bumped_list_generation_is_seen_by_the_next_list_read() -> None:
    cache, _, _ = _counting_cache(live_tier())

    async def page(value: bytes) -> tuple[bytes, str]:
        async def load() -> bytes:
            return value

        return await cache.get_versioned("content_list", "gen", "first", 60, load)

    await page(b"v1")  # miss: stored in the shared cache
    assert await page(b"unused") == (b"v1", "hit")  # shared hit, now held locally too
    await cache.invalidate(generations=("gen",))
    assert await page(b"v2") == (b"v2", "miss")
