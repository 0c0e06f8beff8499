"""Hot statements on the driver's own connection, where SQLAlchemy's per-statement cost
dominates.

A pooled primary-key read through SQLAlchemy Core costs several hundred µs of client CPU;
the same statement sent by asyncpg as a prepared statement costs a small fraction of that
(`loadtests/session_check.py`). `run_on_driver` checks a connection out of an engine's pool
(the pool's checkout rules, such as the ping after idling, still apply), hands the driver's
connection to the caller's function, and gives the round trip the CLIENT span the SQLAlchemy
instrumentation would have (it does not see the driver's own statements).

asyncpg keeps a cache of prepared statements per connection, keyed by the SQL text, so the
same text is parsed and planned once per connection; sqlite3 does the same for its
statements. Only these two drivers have a fast path (`DRIVERS`); callers keep a SQLAlchemy
Core path for any other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from src.core.spans import child_span

tracer = trace.get_tracer(__name__)

T = TypeVar("T")

DRIVERS = frozenset({"asyncpg", "aiosqlite"})

# Failures of the driver that mean the database is unreachable (a 503), not a bug.
_DRIVER_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    sqlite3.OperationalError,
)


def driver_name(engine: AsyncEngine) -> str:
    """`asyncpg`, `aiosqlite`, …: which fast path (if any) `engine` can take."""
    return str(engine.dialect.driver)


async def run_on_driver(
    engine: AsyncEngine,
    run: Callable[[Any], Awaitable[T]],
    *,
    operation: str,
    collection: str,
) -> T:
    """`run(driver_connection)` on a connection from `engine`'s pool, inside a CLIENT span.

    A connection that failed or was interrupted mid-statement is invalidated, never handed
    out again; a failure meaning the database is unreachable is raised as `ConnectionError`
    (answered 503 like SQLAlchemy's own), chained to the driver's error.
    """
    connection: PoolProxiedConnection = await engine.raw_connection()
    try:
        with child_span(
            tracer,
            f"{operation} {collection}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "db.system.name": engine.dialect.name,
                "db.operation.name": operation,
                "db.collection.name": collection,
            },
        ):
            result = await run(connection.driver_connection)
    except BaseException as error:
        await greenlet_spawn(connection.invalidate, error)
        if isinstance(error, _DRIVER_UNAVAILABLE):
            unreachable = f"{operation} {collection}: the database could not be reached"
            raise ConnectionError(unreachable) from error
        raise
    await greenlet_spawn(connection.close)
    return result
