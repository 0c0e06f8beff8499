"""The in-process rate counter (src/middleware/rate_counter.py): exact alone, shared through
Redis by its background sync, and still counting when Redis is gone. A fake clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from src.middleware.rate_counter import RateCounter
from tests.conftest import RUN_ID, Backend
from tests.resilience.servers import free_port

HOUR = 3600


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * HOUR + 10.0  # 10 s into a window

    def __call__(self) -> float:
        return self.now


def test_without_redis_the_count_is_exact() -> None:
    counter = RateCounter(None, "p:", 0.1, clock=Clock())
    answers = [counter.hit("default", 3, HOUR, "ip:a") for _ in range(4)]
    assert [remaining for remaining, _ in answers] == [2, 1, 0, -1]
    assert answers[0][1] == HOUR - 10  # seconds until the window resets


def test_clients_and_policies_are_counted_apart() -> None:
    counter = RateCounter(None, "p:", 0.1, clock=Clock())
    counter.hit("default", 1, HOUR, "ip:a")
    assert counter.hit("default", 1, HOUR, "ip:b")[0] == 0
    assert counter.hit("auth", 1, HOUR, "ip:a")[0] == 0
    assert counter.hit("default", 1, HOUR, "ip:a")[0] == -1


def test_the_previous_window_weighs_in_proportion_to_what_is_left_of_it() -> None:
    clock = Clock()
    counter = RateCounter(None, "p:", 0.1, clock=clock)
    for _ in range(10):
        counter.hit("default", 10, HOUR, "ip:a")
    clock.now += HOUR  # 10 s into the next window: it weighs floor(10 × 3590/3600) = 9
    assert [counter.hit("default", 10, HOUR, "ip:a")[0] for _ in range(2)] == [0, -1]
    clock.now += HOUR / 2  # half-way: it weighs 4 (floor of 4.99), plus the 1 hit counted
    assert counter.hit("default", 10, HOUR, "ip:a")[0] == 4


@pytest.fixture
async def redis(backend: Backend) -> AsyncIterator[tuple[Redis, str]]:
    if backend.redis_url is None:
        pytest.skip("the shared count needs Redis (the postgres run)")
    client = Redis.from_url(backend.redis_url)
    try:
        yield client, f"inkwell-test-{RUN_ID}:rate-unit:{uuid.uuid4().hex}:"
    finally:
        await client.aclose()


async def test_hits_counted_by_one_process_refuse_the_client_at_another_after_a_sync(
    redis: tuple[Redis, str],
) -> None:
    client, prefix = redis
    clock = Clock()
    a = RateCounter(client, prefix, 0.1, clock=clock)
    b = RateCounter(client, prefix, 0.1, clock=clock)
    for _ in range(3):
        a.hit("default", 3, HOUR, "ip:c")
    await a.sync()
    assert b.hit("default", 3, HOUR, "ip:c")[0] == 2  # b's view is not synced yet: admitted
    await b.sync()
    assert b.hit("default", 3, HOUR, "ip:c")[0] == -1
    await a.sync()
    assert a.hit("default", 3, HOUR, "ip:c")[0] == -1


async def test_a_new_window_at_another_process_weighs_the_shared_previous_window(
    redis: tuple[Redis, str],
) -> None:
    client, prefix = redis
    clock = Clock()
    a = RateCounter(client, prefix, 0.1, clock=clock)
    b = RateCounter(client, prefix, 0.1, clock=clock)
    for _ in range(4):
        a.hit("default", 4, HOUR, "ip:d")
    await a.sync()
    clock.now += HOUR  # b first sees the client in the next window
    b.hit("default", 4, HOUR, "ip:d")
    await b.sync()  # fetches the previous window's total, 4
    assert b.hit("default", 4, HOUR, "ip:d")[0] == -1


async def test_with_redis_unreachable_hits_go_on_counting_locally() -> None:
    client = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    errors: list[None] = []
    counter = RateCounter(client, "p:", 0.1, on_error=lambda: errors.append(None), clock=Clock())
    try:
        assert counter.hit("default", 2, HOUR, "ip:e")[0] == 1
        with pytest.raises((RedisError, OSError)):
            await counter.sync()
        assert counter.hit("default", 2, HOUR, "ip:e")[0] == 0  # the failed push is kept
        assert counter.hit("default", 2, HOUR, "ip:e")[0] == -1
    finally:
        await client.aclose()
