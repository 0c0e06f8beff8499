"""Fixtures for the fault tests: private PostgreSQL and Redis servers, and TCP proxies.

The servers are started once per test session on free loopback ports (never the machine's
shared 5432/6379) and removed at the end; each test gets its own database on them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import IN_CI
from tests.resilience.servers import (
    REDIS_SERVER,
    PostgresServer,
    RedisServer,
    TcpProxy,
    create_database,
    postgres_available,
    postgres_cluster,
    redis_server,
)


def _unavailable(what: str) -> None:
    message = f"{what} is not installed"
    if IN_CI:
        pytest.fail(message + " (CI runs the fault tests)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PostgresServer]:
    if not postgres_available():
        _unavailable("PostgreSQL (initdb, pg_ctl)")
    with postgres_cluster() as server:
        yield server


@pytest.fixture(scope="session")
def private_redis() -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        _unavailable("redis-server")
    with redis_server() as server:
        yield server


@pytest.fixture
async def pg_database(private_postgres: PostgresServer) -> str:
    """A fresh, migrated database on the private server; its SQLAlchemy URL."""
    return await create_database(private_postgres, f"inkwell_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def redis_proxy(private_redis: RedisServer) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy(private_redis.port).start()
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
async def postgres_proxy(private_postgres: PostgresServer) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy(private_postgres.port).start()
    try:
        yield proxy
    finally:
        await proxy.close()
