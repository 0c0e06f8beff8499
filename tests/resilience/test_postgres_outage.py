"""PostgreSQL goes away and comes back while Inkwell runs (a private server behind a proxy).

While it is gone every API call that needs it answers a 503 `service_unavailable` problem
within the pool/connect timeouts (no hang), `/ready` says 503 and `/health` stays 200. When it
returns, requests succeed again without a restart. A command whose connection is lost in the
middle of its transaction leaves nothing behind: the write tables and the read models agree.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import Backend, running_app
from tests.helpers import assert_problem, authed_user, content_body, publish, signup_body
from tests.resilience.servers import PostgresServer, TcpProxy, inkwell_cli, pg_execute

pytestmark = pytest.mark.slow

TIMEOUTS = {
    "db_pool_timeout_seconds": 1,
    "db_connect_timeout_seconds": 1,
    "ready_check_timeout_seconds": 1,
    "db_command_timeout_seconds": 1,
    "idempotency_lock_seconds": 1,
}
NO_HANG_SECONDS = 5.0


def _via_proxy(url: str, proxy: TcpProxy) -> str:
    host, _, rest = url.rpartition("@")[2].partition(":")
    database = rest.partition("/")[2]
    return f"postgresql+asyncpg://postgres@{host}:{proxy.port}/{database}"


def _app(pg_database: str, proxy: TcpProxy, **overrides: Any) -> Any:
    backend = Backend("postgres", _via_proxy(pg_database, proxy), None)
    return running_app(backend, **{**TIMEOUTS, **overrides})


def _rebuild_check(database_url: str) -> None:
    check = inkwell_cli("rebuild-read-models", "--check", env={"DATABASE_URL": database_url})
    assert check.returncode == 0, check.stdout + check.stderr


async def _timed(call: Any) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = await asyncio.wait_for(call, NO_HANG_SECONDS * 2)
    return response, time.monotonic() - start


async def test_postgres_outage_answers_503_promptly_and_recovers_without_restart(
    pg_database: str, postgres_proxy: TcpProxy
) -> None:
    async with _app(pg_database, postgres_proxy) as client:
        author = await authed_user(client)
        item = await publish(client, author)

        keyed_body = content_body(title="Keyed create during the outage")
        keyed_headers = {**author["headers"], "Idempotency-Key": "outage-1"}
        await postgres_proxy.cut()

        calls = {
            "read user": client.get(f"/api/v1/users/{author['id']}"),
            "list content": client.get("/api/v1/content", params={"limit": 7}),
            "me": client.get("/api/v1/users/me", headers=author["headers"]),
            "create content": client.post(
                "/api/v1/content", json=content_body(), headers=author["headers"]
            ),
            "keyed create": client.post("/api/v1/content", json=keyed_body, headers=keyed_headers),
            "signup": client.post("/api/v1/signup", json=signup_body()),
            "login": client.post(
                "/api/v1/auth/login", json={"email": author["email"], "password": "x" * 10}
            ),
        }
        slowest = 0.0
        for what, call in calls.items():
            response, seconds = await _timed(call)
            assert seconds < NO_HANG_SECONDS, f"{what} took {seconds:.2f}s"
            slowest = max(slowest, seconds)
            problem = assert_problem(response, 503, "service_unavailable")
            assert "Traceback" not in problem["detail"], what
            assert response.headers["retry-after"] == "1"
        print(f"\nslowest 503 with PostgreSQL down: {slowest * 1000:.0f} ms")

        ready, seconds = await _timed(client.get("/ready"))
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["status"] == "fail"
        assert ready.json()["checks"]["read_database"]["status"] == "fail"
        assert (await client.get("/health")).status_code == 200

        await postgres_proxy.restore()
        restored = time.monotonic()
        while True:
            response = await client.get(f"/api/v1/users/{author['id']}")
            if response.status_code == 200:
                break
            assert time.monotonic() - restored < 10, response.text
            await asyncio.sleep(0.05)
        print(f"recovered {(time.monotonic() - restored) * 1000:.0f} ms after PostgreSQL returned")
        assert (await client.get("/ready")).status_code == 200
        again = await publish(client, author)
        assert (await client.get(f"/api/v1/content/{again['id']}")).status_code == 200
        assert (await client.get(f"/api/v1/content/{item['id']}")).status_code == 200
        # the keyed create that failed during the outage is retried with its key: applied once
        deadline = time.monotonic() + 10
        while (
            retried := await client.post("/api/v1/content", json=keyed_body, headers=keyed_headers)
        ).status_code == 409:
            assert time.monotonic() < deadline, retried.text
            await asyncio.sleep(0.2)
        assert retried.status_code == 201, retried.text
        listing = (await client.get("/api/v1/content", params={"limit": 100})).json()["items"]
        assert [c["title"] for c in listing].count(keyed_body["title"]) == 1
    _rebuild_check(pg_database)


async def test_postgres_partition_answers_503_within_the_timeouts(
    pg_database: str, postgres_proxy: TcpProxy
) -> None:
    """A partition (packets vanish, nothing is refused) must not hang requests either."""
    async with _app(pg_database, postgres_proxy) as client:
        author = await authed_user(client)
        postgres_proxy.blackhole()
        for call in (
            client.get(f"/api/v1/users/{author['id']}"),
            client.post("/api/v1/content", json=content_body(), headers=author["headers"]),
        ):
            response, seconds = await _timed(call)
            assert seconds < NO_HANG_SECONDS, f"{response.request.url} took {seconds:.2f}s"
            assert_problem(response, 503, "service_unavailable")
            print(f"\n503 during a partition after {seconds * 1000:.0f} ms")
        await postgres_proxy.restore()
        deadline = time.monotonic() + 10
        while (await client.get(f"/api/v1/users/{author['id']}")).status_code != 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await publish(client, author)
    _rebuild_check(pg_database)


async def test_a_command_cut_off_mid_transaction_leaves_no_partial_write(
    pg_database: str, postgres_proxy: TcpProxy, private_postgres: PostgresServer
) -> None:
    """The create's INSERT into `contents` has run, its projection waits on a row lock we
    hold; then the connection is lost. Nothing of it may remain, and a retry with the same
    Idempotency-Key applies it exactly once."""
    database = pg_database.rpartition("/")[2]
    dsn = private_postgres.dsn(database)
    async with _app(pg_database, postgres_proxy) as client:
        author = await authed_user(client)
        await publish(client, author)
        body = content_body(title="Interrupted mid-transaction")
        headers = {**author["headers"], "Idempotency-Key": "interrupted-1"}

        blocker = await asyncpg.connect(dsn)
        try:
            blocking = blocker.transaction()
            await blocking.start()
            await blocker.execute(
                "SELECT 1 FROM users_read WHERE id = $1 FOR UPDATE", uuid.UUID(author["id"])
            )
            request = asyncio.ensure_future(
                client.post("/api/v1/content", json=body, headers=headers)
            )
            deadline = time.monotonic() + 10
            # pg_stat_activity is a snapshot taken once per transaction (the blocker's is still
            # open): clear it before each look, or a waiter that arrives later is never seen.
            while await blocker.execute(
                "SELECT pg_stat_clear_snapshot()"
            ) is not None and not await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'inkwell-write' AND wait_event_type = 'Lock' AND datname = current_database()"
            ):
                assert not request.done(), request.result().text
                assert time.monotonic() < deadline, "the command never reached its projection"
                await asyncio.sleep(0.02)
            inserted = await blocker.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE a.application_name = 'inkwell-write' AND l.locktype = 'transactionid'"
                " AND l.mode = 'ExclusiveLock'"
            )
            assert inserted >= 1  # it holds a transaction id: it has written already
            await postgres_proxy.cut()
            response = await asyncio.wait_for(request, NO_HANG_SECONDS)
        finally:
            await blocking.rollback()
            await blocker.close()
        assert_problem(response, 503, "service_unavailable")

        async def rows() -> tuple[int, int]:
            [row] = await pg_execute(
                dsn,
                "SELECT (SELECT count(*) FROM contents WHERE title = $1),"
                " (SELECT count(*) FROM contents_read WHERE title = $1)",
                body["title"],
            )
            return int(row[0]), int(row[1])

        # the server rolls the orphaned transaction back once it notices the lost client
        deadline = time.monotonic() + 10
        while await pg_execute(
            dsn,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'inkwell-write'"
            " AND state LIKE 'idle in transaction%'",
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert await rows() == (0, 0)
        _rebuild_check(pg_database)

        await postgres_proxy.restore()
        deadline = time.monotonic() + 15
        while True:
            retried = await client.post("/api/v1/content", json=body, headers=headers)
            if retried.status_code not in (409, 503):
                break
            assert time.monotonic() < deadline, retried.text
            await asyncio.sleep(0.2)
        assert retried.status_code == 201, retried.text
        replay = await client.post("/api/v1/content", json=body, headers=headers)
        assert replay.headers.get("idempotent-replayed") == "true"
        assert replay.content == retried.content
        assert await rows() == (1, 1)
        me = (await client.get("/api/v1/users/me", headers=author["headers"])).json()
        assert me["content_count"] == 2
    _rebuild_check(pg_database)
