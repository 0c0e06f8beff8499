"""Event delivery survives killed processes, a Redis outage and a second worker: exactly one
effect per event and handler, none missing.

Real processes on a private PostgreSQL and Redis (or SQLite for the embedded default), with
the counting handlers of tests/resilience/event_apps.py: every check reads `test_effects`
(one row per application) and `processed_events`.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_client

from src.cli import migrate
from tests.helpers import signup_body
from tests.resilience.event_apps import EFFECTS_DDL, HANDLERS
from tests.resilience.servers import (
    InkwellProcess,
    RedisServer,
    TcpProxy,
    WorkerProcess,
    pg_execute,
)

pytestmark = pytest.mark.slow

SECRET = "resilience-secret-that-is-long-enough-0123456789"


def environment(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "JWT_SECRET": SECRET,
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "EVENT_CLAIM_SECONDS": "1",
        "EVENT_MAX_ATTEMPTS": "3",
        **extra,
    }
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
        env.setdefault("REDIS_KEY_PREFIX", f"inkwell-events-{uuid.uuid4().hex[:8]}:")
    return env


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
async def pg_url(pg_database: str) -> str:
    await pg_execute(dsn(pg_database), EFFECTS_DDL)
    return pg_database


@pytest.fixture
def started() -> Iterator[list[Any]]:
    processes: list[Any] = []
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()


async def effects(url: str) -> list[tuple[str, str]]:
    """`(event_id, handler)` of every application, duplicates kept."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite+aiosqlite:///")

        def read() -> list[tuple[str, str]]:
            with sqlite3.connect(path) as connection:
                return list(connection.execute("SELECT event_id, handler FROM test_effects"))

        return await asyncio.to_thread(read)
    rows = await pg_execute(dsn(url), "SELECT event_id, handler FROM test_effects")
    return [(row[0], row[1]) for row in rows]


async def signed_up_events(url: str) -> set[str]:
    """The ids of the signup events the outbox recorded (delivered rows are kept a minute)."""
    sql = "SELECT event_id FROM outbox WHERE event_type = 'UserSignedUp'"
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite+aiosqlite:///")

        def read() -> set[str]:
            with sqlite3.connect(path) as connection:
                return {str(uuid.UUID(r[0])) for r in connection.execute(sql)}

        return await asyncio.to_thread(read)
    return {str(row[0]) for row in await pg_execute(dsn(url), sql)}


async def sign_up_many(base_url: str, count: int, name: str | None = None) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        answers = await asyncio.gather(
            *(client.post("/api/v1/signup", json=signup_body(**({"name": name} if name else {})))
              for _ in range(count))
        )  # fmt: skip
    assert [a.status_code for a in answers] == [201] * count, [a.text for a in answers]
    return [a.json()["id"] for a in answers]


async def wait_for(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.1)


async def assert_exactly_once(url: str, events: int) -> None:
    """Every recorded signup event applied once by each handler: none missing, none twice."""

    async def complete() -> bool:
        return len(await effects(url)) >= events * len(HANDLERS)

    await wait_for(complete)
    await asyncio.sleep(0.5)  # a duplicate application would land meanwhile
    ids = await signed_up_events(url)
    assert len(ids) == events
    seen = await effects(url)
    assert sorted(seen) == sorted((event, handler) for event in ids for handler in HANDLERS)


async def follow_an_author(base_url: str, followers: int = 2) -> tuple[Any, list[Any]]:
    """An author and `followers` users following them: (author, followers), each with
    `headers`."""
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        people = []
        for _ in range(followers + 1):
            body = signup_body()
            created = await client.post("/api/v1/signup", json=body)
            assert created.status_code == 201, created.text
            login = await client.post(
                "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
            )
            token = login.json()["access_token"]
            people.append({**created.json(), "headers": {"Authorization": f"Bearer {token}"}})
        author, readers = people[0], people[1:]
        for reader in readers:
            answer = await client.put(
                f"/api/v1/users/{author['id']}/follow", headers=reader["headers"]
            )
            assert answer.status_code == 204, answer.text
    return author, readers


async def publish_items(base_url: str, author: Any, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        ids = []
        for n in range(count):
            answer = await client.post(
                "/api/v1/content",
                json={"title": f"Item {n} {uuid.uuid4().hex[:6]}", "content": "Long enough text."},
                headers=author["headers"],
            )
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
    return ids


async def assert_notified_once(base_url: str, readers: list[Any], items: list[str]) -> None:
    """Each reader has exactly one `content_published` notification per item: none missing,
    none twice."""

    async def published_to(client: httpx.AsyncClient, reader: Any) -> list[str]:
        answer = await client.get(
            "/api/v1/notifications", params={"limit": 100}, headers=reader["headers"]
        )
        assert answer.status_code == 200, answer.text
        return [
            n["content"]["id"] for n in answer.json()["items"] if n["type"] == "content_published"
        ]

    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:

        async def complete() -> bool:
            for reader in readers:
                if len(await published_to(client, reader)) < len(items):
                    return False
            return True

        await wait_for(complete)
        await asyncio.sleep(0.5)
        for reader in readers:
            assert sorted(await published_to(client, reader)) == sorted(items)


async def test_a_worker_killed_mid_batch_leaves_its_entries_to_the_next(
    pg_url: str, private_redis: RedisServer, tmp_path: Path, started: list[Any]
) -> None:
    env = environment(pg_url, private_redis.url, TEST_HANDLER_DELAY="0.05")
    api = InkwellProcess(env, tmp_path / "api.log").start()
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    started += [api, worker]
    author, readers = await follow_an_author(api.url)
    items = await publish_items(api.url, author, 5)
    await sign_up_many(api.url, 40)

    async def some_applied() -> bool:
        return len(await effects(pg_url)) >= 10

    await wait_for(some_applied)
    worker.signal(signal.SIGKILL)
    worker.wait(10)
    assert len(await effects(pg_url)) < 86, "the worker finished before it was killed"
    started.append(WorkerProcess(env, tmp_path / "worker2.log").start())
    await assert_exactly_once(pg_url, 43)  # 40 signups + the author and their 2 readers
    await assert_notified_once(api.url, readers, items)


async def test_an_api_process_killed_right_after_a_201_still_delivers_once(
    tmp_path: Path, started: list[Any]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inkwell.db'}"
    await asyncio.to_thread(migrate, url)
    with sqlite3.connect(tmp_path / "inkwell.db") as connection:
        connection.execute(EFFECTS_DDL)
    env = environment(url, None, TEST_HANDLER_DELAY="0.3")
    factory = "tests.resilience.event_apps:create_app"
    api = InkwellProcess(env, tmp_path / "api.log", factory=factory).start()
    started.append(api)
    author, readers = await follow_an_author(api.url)
    items = await publish_items(api.url, author, 2)
    await sign_up_many(api.url, 3)
    api.signal(signal.SIGKILL)  # the handlers are still sleeping on an earlier event
    api.wait(10)
    assert len(await effects(url)) < 12
    restarted = InkwellProcess(env, tmp_path / "api2.log", factory=factory).start()
    started.append(restarted)
    await assert_exactly_once(url, 6)
    await assert_notified_once(restarted.url, readers, items)


async def test_two_workers_apply_every_event_once(
    pg_url: str, private_redis: RedisServer, tmp_path: Path, started: list[Any]
) -> None:
    env = environment(pg_url, private_redis.url, TEST_HANDLER_DELAY="0.01")
    api = InkwellProcess(env, tmp_path / "api.log").start()
    first = WorkerProcess(env, tmp_path / "w1.log").start()
    second = WorkerProcess(env, tmp_path / "w2.log").start()
    started += [api, first, second]
    author, readers = await follow_an_author(api.url)
    items = await publish_items(api.url, author, 10)
    await sign_up_many(api.url, 40)
    await assert_exactly_once(pg_url, 43)
    await assert_notified_once(api.url, readers, items)


async def test_commands_answer_while_redis_is_down_and_the_relay_resumes(
    pg_url: str, redis_proxy: TcpProxy, tmp_path: Path, started: list[Any]
) -> None:
    env = environment(pg_url, f"redis://127.0.0.1:{redis_proxy.port}/0")
    api = InkwellProcess(env, tmp_path / "api.log").start()
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    started += [api, worker]
    author, readers = await follow_an_author(api.url)
    await sign_up_many(api.url, 2)
    await assert_exactly_once(pg_url, 5)
    await redis_proxy.cut()
    await sign_up_many(api.url, 10)  # every one 201: the outbox just grows
    items = await publish_items(api.url, author, 3)
    waiting = await pg_execute(
        dsn(pg_url), "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"
    )
    assert waiting[0][0] == 10 + 3 * 2  # a publication is ContentCreated + ContentPublished
    await redis_proxy.restore()
    await assert_exactly_once(pg_url, 15)
    await assert_notified_once(api.url, readers, items)


async def test_a_poison_event_reaches_the_dead_letter_stream(
    pg_url: str, private_redis: RedisServer, tmp_path: Path, started: list[Any]
) -> None:
    env = environment(pg_url, private_redis.url, EVENT_MAX_ATTEMPTS="2", EVENT_CLAIM_SECONDS="0.3")
    api = InkwellProcess(env, tmp_path / "api.log").start()
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    started += [api, worker]
    await sign_up_many(api.url, 1, name="Poison Pill")
    dead_key = f"{env['REDIS_KEY_PREFIX']}events:dead"
    client = redis_client.from_url(private_redis.url)
    try:

        async def dead() -> bool:
            return int(await client.xlen(dead_key)) == 1

        await wait_for(dead)
        ((_, fields),) = await client.xrange(dead_key)
    finally:
        await client.aclose()
    assert b"poison event" in fields[b"reason"]
    assert await effects(pg_url) == []
    metrics = httpx.get(f"{worker.url}/metrics", timeout=5).text
    assert 'events_processed_total{handler="test.effect_a",outcome="dead_lettered"} 1.0' in metrics


async def test_sigterm_drains_the_worker_and_it_exits_0(
    pg_url: str, private_redis: RedisServer, tmp_path: Path, started: list[Any]
) -> None:
    env = environment(pg_url, private_redis.url, TEST_HANDLER_DELAY="0.3")
    api = InkwellProcess(env, tmp_path / "api.log").start()
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    started += [api, worker]
    await sign_up_many(api.url, 20)

    async def some_applied() -> bool:
        return len(await effects(pg_url)) >= 1

    await wait_for(some_applied)
    worker.signal(signal.SIGTERM)
    # The events in flight take ≥ 0.3 s more: the drain is still on meanwhile.
    statuses = []
    for _ in range(5):
        statuses.append(httpx.get(f"{worker.url}/ready", timeout=5).status_code)
        if statuses[-1] == 503:
            break
        time.sleep(0.02)
    assert statuses[-1] == 503, statuses
    assert worker.wait(30) == 0, worker.output()
    client = redis_client.from_url(private_redis.url)
    try:
        summary = await client.xpending(f"{env['REDIS_KEY_PREFIX']}events", "workers")
    finally:
        await client.aclose()
    assert summary["pending"] == 0  # what was in flight finished and was acknowledged
    started.append(WorkerProcess(env, tmp_path / "worker2.log").start())
    await assert_exactly_once(pg_url, 20)
