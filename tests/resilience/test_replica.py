"""A real streaming replica: queries read it, commands write the primary.

A private PostgreSQL primary and a replica made with `pg_basebackup -R`; Inkwell runs with
`DATABASE_URL` on the primary and `READ_DATABASE_URL` on the replica. Where each statement
ran is read from the servers' own statistics (`pg_stat_statements`, `pg_stat_activity`),
never from mocks. Replay is paused on the replica to show what a client sees during lag.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from tests.conftest import Backend, running_app
from tests.helpers import authed_user, publish
from tests.resilience.servers import (
    PostgresServer,
    create_database,
    pg_execute,
    running_postgres,
)

pytestmark = pytest.mark.slow

REINVALIDATE_SECONDS = 1.0


@pytest.fixture(scope="module")
def replica(private_postgres: PostgresServer) -> Iterator[PostgresServer]:
    with running_postgres("inkwell-replica-", private_postgres.base_backup) as server:
        yield server


@dataclass
class Pair:
    primary: PostgresServer
    replica: PostgresServer
    database: str

    @property
    def primary_url(self) -> str:
        return self.primary.url(self.database)

    @property
    def replica_url(self) -> str:
        return self.replica.url(self.database)

    async def replicated(self, sql: str, *args: Any, timeout: float = 10) -> float:
        """Seconds until `sql` returns a row on the replica."""
        start = time.monotonic()
        connection = await asyncpg.connect(self.replica.dsn(self.database), timeout=5)
        try:
            while not await connection.fetchval(sql, *args):
                assert time.monotonic() - start < timeout, f"not replicated: {sql}"
                await asyncio.sleep(0.001)
        finally:
            await connection.close()
        return time.monotonic() - start


@pytest.fixture
async def pair(private_postgres: PostgresServer, replica: PostgresServer) -> Pair:
    name = f"inkwell_{uuid.uuid4().hex[:12]}"
    await create_database(private_postgres, name)
    await pg_execute(private_postgres.dsn(name), "CREATE EXTENSION pg_stat_statements")
    deadline = time.monotonic() + 15
    while True:  # the new database, its tables and the extension reach the replica
        try:
            await pg_execute(replica.dsn(name), "SELECT 1 FROM pg_stat_statements LIMIT 1")
            await pg_execute(replica.dsn(name), "SELECT 1 FROM contents_read LIMIT 1")
            break
        except (asyncpg.PostgresError, OSError):
            assert time.monotonic() < deadline, "the replica never received the database"
            await asyncio.sleep(0.05)
    return Pair(private_postgres, replica, name)


def _app(pair: Pair) -> Any:
    backend = Backend("postgres", pair.primary_url, None)
    return running_app(
        backend,
        read_database_url=pair.replica_url,
        cache_reinvalidate_seconds=REINVALIDATE_SECONDS,
    )


async def _statements(server: PostgresServer, database: str) -> list[tuple[str, int]]:
    rows = await pg_execute(
        server.dsn(database),
        "SELECT query, calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = $1",
        database,
    )
    return [(row["query"], int(row["calls"])) for row in rows]


async def _application_names(server: PostgresServer, database: str) -> set[str]:
    rows = await pg_execute(
        server.dsn("postgres"),
        "SELECT DISTINCT application_name FROM pg_stat_activity"
        " WHERE datname = $1 AND application_name LIKE 'inkwell%'",
        database,
    )
    return {row[0] for row in rows}


def _reads(statements: list[tuple[str, int]], table: str) -> int:
    return sum(
        calls
        for query, calls in statements
        if query.lstrip().upper().startswith("SELECT") and f"FROM {table}" in query
    )


def _writes(statements: list[tuple[str, int]]) -> list[str]:
    verbs = ("INSERT", "UPDATE", "DELETE")
    return [query for query, _ in statements if query.lstrip().upper().startswith(verbs)]


async def test_queries_read_the_replica_and_commands_write_the_primary(pair: Pair) -> None:
    async with _app(pair) as client:
        author = await authed_user(client)
        items = [await publish(client, author) for _ in range(3)]
        last = items[-1]["id"]
        await pair.replicated("SELECT 1 FROM contents_read WHERE id = $1", uuid.UUID(last))
        for item in items:
            assert (await client.get(f"/api/v1/content/{item['id']}")).status_code == 200
        assert (await client.get("/api/v1/content")).status_code == 200
        assert (await client.get(f"/api/v1/users/{author['id']}")).status_code == 200
        assert (await client.get("/api/v1/users")).status_code == 200
        me = await client.get("/api/v1/users/me", headers=author["headers"])
        assert me.json()["content_count"] == 3
        assert await _application_names(pair.primary, pair.database) == {"inkwell-write"}
        assert await _application_names(pair.replica, pair.database) == {"inkwell-read"}

    on_primary = await _statements(pair.primary, pair.database)
    on_replica = await _statements(pair.replica, pair.database)
    # every query ran on the replica, none on the primary
    assert _reads(on_primary, "contents_read") == 0
    assert _reads(on_primary, "users_read") == 0
    assert _reads(on_replica, "contents_read") >= 4  # 3 items + 1 page (first reads: misses)
    assert _reads(on_replica, "users_read") >= 3
    # every command wrote on the primary, nothing was written through the replica
    primary_writes = _writes(on_primary)
    assert any(q.startswith("INSERT INTO contents ") for q in primary_writes), primary_writes
    assert any(q.startswith("INSERT INTO users ") for q in primary_writes), primary_writes
    assert _writes(on_replica) == []


async def test_a_write_becomes_readable_once_the_replica_catches_up(pair: Pair) -> None:
    lags: list[float] = []
    async with _app(pair) as client:
        author = await authed_user(client)
        for _ in range(20):
            created = await publish(client, author)
            lags.append(
                await pair.replicated(
                    "SELECT 1 FROM contents_read WHERE id = $1", uuid.UUID(created["id"])
                )
            )
            read = await client.get(f"/api/v1/content/{created['id']}")
            assert read.status_code == 200
            assert read.json() == created
    print(
        f"\nreplica lag over {len(lags)} writes: median {statistics.median(lags) * 1000:.1f} ms,"
        f" max {max(lags) * 1000:.1f} ms"
    )
    assert max(lags) < 5


async def test_the_command_response_is_complete_while_the_replica_lags(pair: Pair) -> None:
    async with _app(pair) as client:
        author = await authed_user(client)
        old = await publish(client, author, title="Before the lag")
        await pair.replicated("SELECT 1 FROM contents_read WHERE id = $1", uuid.UUID(old["id"]))
        old_url = f"/api/v1/content/{old['id']}"
        assert (await client.get(old_url)).json()["title"] == "Before the lag"

        replica = pair.replica.dsn(pair.database)
        await pg_execute(replica, "SELECT pg_wal_replay_pause()")
        try:
            deadline = time.monotonic() + 10
            while (await pg_execute(replica, "SELECT pg_get_wal_replay_pause_state()"))[0][
                0
            ] != "paused":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)

            response = await client.post(
                "/api/v1/content",
                json={
                    "title": "Written during the lag",
                    "content": "Complete without the replica.",
                },
                headers=author["headers"],
            )
            assert response.status_code == 201, response.text
            created = response.json()
            assert created["title"] == "Written during the lag"
            assert created["content"] == "Complete without the replica."
            assert created["author"] == {
                "id": author["id"],
                "name": author["name"],
                "display_name": author["display_name"],
            }
            assert created["created_at"] == created["updated_at"]
            assert response.headers["location"] == f"/api/v1/content/{created['id']}"

            changed = await client.patch(
                old_url, json={"title": "Changed during the lag"}, headers=author["headers"]
            )
            assert changed.status_code == 200
            assert changed.json()["title"] == "Changed during the lag"

            # a read goes to the lagging replica: it does not see the writes yet
            assert (await client.get(f"/api/v1/content/{created['id']}")).status_code == 404
            assert (await client.get(old_url)).json()["title"] == "Before the lag"
            page = (await client.get("/api/v1/content")).json()["items"]
            assert created["id"] not in [item["id"] for item in page]
        finally:
            await pg_execute(replica, "SELECT pg_wal_replay_resume()")

        async def settled() -> bool:
            new = await client.get(f"/api/v1/content/{created['id']}")
            again = await client.get(old_url)
            page = (await client.get("/api/v1/content")).json()["items"]
            return bool(
                new.status_code == 200
                and new.json() == created
                and again.json() == changed.json()
                and created["id"] in [item["id"] for item in page]
            )

        start = time.monotonic()
        while not await settled():
            assert time.monotonic() - start < 10, "reads never caught up with the writes"
            await asyncio.sleep(0.05)
        print(f"\nreads consistent {time.monotonic() - start:.2f}s after replay resumed")
