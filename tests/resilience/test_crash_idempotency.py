"""SIGKILL in the middle of a burst of keyed creates, then retry every key: exactly one effect.

A real server process (on a private PostgreSQL database, and on SQLite) receives distinct
`Idempotency-Key`s, each for a create with a unique title, and is killed without warning while
they run. After a restart every key is retried until it is no longer in progress (abandoned
locks expire after `IDEMPOTENCY_LOCK_SECONDS`): each key yields one 201, exactly one contents
row, answers that already reached the client are replayed unchanged, and a second retry
replays byte for byte.
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

from src.cli import migrate
from tests.helpers import signup_body
from tests.resilience.servers import (
    InkwellProcess,
    PostgresServer,
    create_database,
    inkwell_cli,
    pg_execute,
)

pytestmark = pytest.mark.slow

KEYS = 40
KILL_AFTER_ANSWERS = 10
LOCK_SECONDS = 2


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'inkwell.db'}"
        await asyncio.to_thread(migrate, url)
        return url
    server: PostgresServer = request.getfixturevalue("private_postgres")
    return await create_database(server, f"inkwell_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def processes() -> Iterator[list[InkwellProcess]]:
    started: list[InkwellProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def _server(database_url: str, tmp_path: Path, name: str) -> InkwellProcess:
    return InkwellProcess(
        env={
            "APP_ENV": "test",
            "DATABASE_URL": database_url,
            "IDEMPOTENCY_LOCK_SECONDS": str(LOCK_SECONDS),
            "BCRYPT_ROUNDS": "4",
            "RATE_LIMIT_ENABLED": "false",
            "SHUTDOWN_DRAIN_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "JWT_SECRET": "crash-test-secret-long-enough-for-hs256-0123456789",
        },
        log=tmp_path / f"{name}.log",
    )


def _snapshot(response: httpx.Response) -> tuple[int, bytes, str | None, str | None]:
    return (
        response.status_code,
        response.content,
        response.headers.get("content-type"),
        response.headers.get("location"),
    )


async def _rows_per_title(database_url: str, titles: list[str]) -> dict[str, list[str]]:
    query = "SELECT title, id FROM contents"
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]
        with sqlite3.connect(path) as db:
            rows: list[Any] = db.execute(query).fetchall()
    else:
        rows = await pg_execute(database_url.replace("+asyncpg", ""), query)
    found: dict[str, list[str]] = {title: [] for title in titles}
    for title, row_id in rows:
        if title in found:
            found[title].append(str(uuid.UUID(str(row_id))))
    return found


async def test_sigkill_mid_burst_then_retries_yield_exactly_one_effect_per_key(
    database_url: str, tmp_path: Path, processes: list[InkwellProcess]
) -> None:
    first = _server(database_url, tmp_path, "first")
    processes.append(first)
    first.start()
    run = uuid.uuid4().hex[:8]
    requests = {
        f"crash-{run}-{n}": {"title": f"Crash {run} {n}", "content": f"Body of create {n}."}
        for n in range(KEYS)
    }
    answers: dict[str, httpx.Response] = {}

    async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
        body = signup_body()
        assert (await client.post("/api/v1/signup", json=body)).status_code == 201
        login = await client.post(
            "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
        )
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        killed = asyncio.Event()

        async def create(key: str) -> None:
            try:
                response = await client.post(
                    "/api/v1/content", json=requests[key], headers={**auth, "Idempotency-Key": key}
                )
            except httpx.HTTPError:
                return  # cut off by the kill: the outcome is unknown to the client
            answers[key] = response
            if len(answers) >= KILL_AFTER_ANSWERS and not killed.is_set():
                killed.set()
                first.signal(signal.SIGKILL)

        await asyncio.wait_for(asyncio.gather(*(create(key) for key in requests)), 60)
        assert killed.is_set()
    assert await asyncio.to_thread(first.wait, 10) == -signal.SIGKILL
    unanswered = KEYS - len(answers)
    assert unanswered > 0, "the kill came too late to interrupt anything"

    second = _server(database_url, tmp_path, "second")
    processes.append(second)
    second.start()
    retries: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:

        async def retry(key: str) -> httpx.Response:
            deadline = time.monotonic() + 15
            while True:
                response = await client.post(
                    "/api/v1/content", json=requests[key], headers={**auth, "Idempotency-Key": key}
                )
                if response.status_code != 409:
                    return response
                assert time.monotonic() < deadline, response.text
                await asyncio.sleep(0.25)

        for key in requests:
            retries[key] = await retry(key)
        for key, response in retries.items():
            assert response.status_code == 201, (key, response.text)
            if key in answers and answers[key].status_code == 201:
                # the client already had its answer: the retry replays it
                assert response.headers["idempotent-replayed"] == "true"
                assert _snapshot(response) == _snapshot(answers[key])
            again = await client.post(
                "/api/v1/content", json=requests[key], headers={**auth, "Idempotency-Key": key}
            )
            assert again.headers["idempotent-replayed"] == "true"
            assert _snapshot(again) == _snapshot(response)

    rows = await _rows_per_title(database_url, [r["title"] for r in requests.values()])
    for key, data in requests.items():
        assert rows[data["title"]] == [retries[key].json()["id"]], key
    committed_unanswered = sum(
        1 for key, r in retries.items() if key not in answers and "idempotent-replayed" in r.headers
    )
    print(
        f"\n{len(answers)} answered before SIGKILL, {unanswered} cut off"
        f" ({committed_unanswered} of them had committed); one row per key"
    )
    check = inkwell_cli("rebuild-read-models", "--check", env={"DATABASE_URL": database_url})
    assert check.returncode == 0, check.stdout + check.stderr
