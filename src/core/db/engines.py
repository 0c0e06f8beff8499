"""The write and read engines.

* The **write engine** talks to the primary. Commands use it through a unit of work (`uow.py`)
  that the request boundary commits once.
* The **read engine** talks to `READ_DATABASE_URL` (a streaming replica in production; the same
  database by default). Queries reach it only through a `ReadHandle` (`read.py`), in autocommit
  mode: one round trip per statement, no BEGIN/COMMIT.

On SQLite (the embedded default) every connection runs in WAL mode with a busy timeout and
foreign keys on, and write transactions start with `BEGIN IMMEDIATE`, so two writers queue on
the database lock instead of failing when one upgrades a read lock; those of one process take
turns on the loop first (`sqlite_writers.py`), rather than in SQLite's sleeping busy handler.
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from loguru import logger
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext import asyncio as sqlalchemy_asyncio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from src.core.db.driver import IDLE_SINCE, DriverConnections
from src.core.db.inline_sqlite import InlineSQLite, inline_path
from src.core.db.read import ReadHandle
from src.core.db.sqlite_writers import WriterTurns
from src.settings import Settings

EngineRole = Literal["write", "read"]

# A pooled connection that sat idle longer than this is pinged before it is handed out.
PING_IDLE_SECONDS = 1.0


POSTGRES_POOL_SIZE = 20


def pool_size(settings: Settings, url: str, role: EngineRole) -> int:
    """`DB_POOL_SIZE`, or by default 20, except SQLite's read engine: one connection per CPU
    core (at least 2). A SQLite statement runs in its connection's own thread (aiosqlite),
    outside the GIL, so threads beyond the cores only contend: measured on 2 cores, a profile
    read cost 1,106 µs of server CPU with 20 connections, 900 with 4 and 750 with 2. (The
    write engine keeps 20: a command may hold a second connection for its look-ups.)"""
    if settings.db_pool_size is not None:
        return settings.db_pool_size
    if url.startswith("sqlite") and role == "read":
        return max(2, _cores())
    return POSTGRES_POOL_SIZE


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _cores() -> int:
    """The cores this process may use: its affinity, bounded by a cgroup v2 CPU quota (a
    container's CPU limit) when one is set."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))  # rounded up
    except (OSError, ValueError):
        pass
    return cores


def create_engine(url: str, settings: Settings, role: EngineRole) -> AsyncEngine:
    """An async engine for `url`, tuned for its backend and role."""
    options: dict[str, Any] = {"pool_recycle": 1800}
    if role == "read":
        options["isolation_level"] = "AUTOCOMMIT"
        # Nothing to roll back at check-in: the read engine never opens a transaction. The
        # pool's rollback was a thread hop per read on aiosqlite (~55-80 µs of CPU).
        options["pool_reset_on_return"] = None
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        options["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
        options["pool_size"] = pool_size(settings, url, role)
        options["max_overflow"] = settings.db_max_overflow
        options["pool_timeout"] = settings.db_pool_timeout_seconds
        engine = _create_async_engine(url, options)
        _tune_sqlite(engine, settings, role)
        ping_when_idle(engine)
        return engine
    options.update(
        pool_size=pool_size(settings, url, role),
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
    )
    if url.startswith("postgresql+asyncpg"):
        options["connect_args"] = {
            "timeout": settings.db_connect_timeout_seconds,
            # A statement that gets no answer (a network partition leaves the socket open)
            # fails after this long instead of hanging the request; it also bounds pre-ping.
            "command_timeout": settings.db_command_timeout_seconds,
            "server_settings": {"application_name": f"{settings.service_name}-{role}"},
        }
    engine = _create_async_engine(url, options)
    ping_when_idle(engine)
    return engine


def _create_async_engine(url: str, options: dict[str, Any]) -> AsyncEngine:
    # Looked up on SQLAlchemy's module at every call, not imported once: instrumentation
    # installed at process start-up (SQL client spans) wraps that module attribute.
    return sqlalchemy_asyncio.create_async_engine(url, **options)


def ping_when_idle(engine: AsyncEngine, idle_seconds: float = PING_IDLE_SECONDS) -> None:
    """Pessimistic disconnect handling that costs a busy pool nothing.

    `pool_pre_ping` pings on *every* checkout: one extra database round trip per query. A
    connection that was checked in moments ago is as alive as the ping would prove, so only
    connections idle for more than `idle_seconds` (where a restarted or failed-over server,
    or a proxy's idle timeout, leaves dead sockets behind) are pinged. A failed ping discards
    the connection and the pool hands out a fresh one; a connection that dies mid-query is
    detected by SQLAlchemy, which then invalidates the whole pool, as before.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _remember_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            # Idle since it was last used: a connection held idle for hot statements before
            # it came back (src/core/db/driver.py) has been idle since then.
            idle_since = record.info.pop(IDLE_SINCE, None)
            record.info["checked_in_at"] = time.monotonic() if idle_since is None else idle_since

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at <= idle_seconds:
            return  # fresh from connect(), or in use a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("ping failed") from error
        if alive is False:
            raise DisconnectionError("ping failed")


def held_driver_connections(engine: AsyncEngine, settings: Settings) -> DriverConnections:
    """Up to half of `engine`'s pool for its hot statements, held between them for the
    ping-after-idle window at most, waited for as long as the pool's timeout (see
    `src.core.db.driver`); on a SQLite file, those statements run on the
    loop while they stay short (`src.core.db.inline_sqlite`, `SQLITE_INLINE_READS`)."""
    size = getattr(engine.sync_engine.pool, "size", None)
    keep = size() // 2 if callable(size) else 0  # a pool of one holds nothing
    inline = None
    if settings.sqlite_inline_reads and engine.dialect.driver == "aiosqlite":
        path = inline_path(engine.url)
        inline = InlineSQLite(path) if path is not None else None
    return DriverConnections(
        engine,
        keep=keep,
        hold_seconds=PING_IDLE_SECONDS,
        wait_seconds=settings.db_pool_timeout_seconds,
        inline=inline,
    )


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a file-backed SQLite database (`./var` by default)."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError:  # left to the first connection, which answers 503
            logger.warning("cannot create the folder of SQLite database {}", database)


# Each SQLite write engine's turns (for a look at them: `writer_turns`).
_writer_turns: weakref.WeakKeyDictionary[Engine, WriterTurns] = weakref.WeakKeyDictionary()


def writer_turns(engine: AsyncEngine) -> WriterTurns:
    """The turns the write transactions of an SQLite write engine take."""
    return _writer_turns[engine.sync_engine]


def _tune_sqlite(engine: AsyncEngine, settings: Settings, role: EngineRole) -> None:
    busy_timeout = settings.sqlite_busy_timeout_ms

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    if role == "write":
        turns = WriterTurns(busy_timeout / 1000)
        _writer_turns[engine.sync_engine] = turns

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                info = connection.info  # read once: a failed BEGIN may invalidate the connection
                turns.take(info)
                try:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                except BaseException:
                    turns.give_back(info)
                    raise

        @event.listens_for(engine.sync_engine, "commit")
        @event.listens_for(engine.sync_engine, "rollback")
        def _on_end(connection: Any) -> None:
            # Fired just before the COMMIT or ROLLBACK itself: a writer woken now may try its
            # BEGIN while it runs, and then waits SQLite's first, shortest busy sleep. An
            # invalidated connection (a cancelled statement) was checked in, which gave the
            # turn back; asking it for its `info` would raise over the original error.
            if not connection.invalidated:
                turns.give_back(connection.info)

        @event.listens_for(engine.sync_engine, "checkin")
        @event.listens_for(engine.sync_engine, "detach")
        def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
            # A transaction that ended without either, or a connection the garbage collector
            # took back unclosed (detached: its `info` is cleared at the next checkout).
            turns.give_back(record.info)


class Database:
    """The process's two engines. Created in the application's lifespan, disposed in it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.write_engine = create_engine(settings.database_url, settings, "write")
        self.read_engine = create_engine(settings.effective_read_database_url, settings, "read")
        # The hot statements' connections: the session check on the primary, the hot reads.
        self.primary = held_driver_connections(self.write_engine, settings)
        self.read_drivers = held_driver_connections(self.read_engine, settings)
        self.read = ReadHandle(self.read_engine, self.read_drivers)

    @property
    def engines(self) -> dict[EngineRole, AsyncEngine]:
        return {"write": self.write_engine, "read": self.read_engine}

    @property
    def drivers(self) -> dict[EngineRole, DriverConnections]:
        """Each engine's hot-statement connections (held ones count as idle in the metrics)."""
        return {"write": self.primary, "read": self.read_drivers}

    async def dispose(self) -> None:
        await self.primary.close()
        await self.read_drivers.close()
        await self.write_engine.dispose()
        await self.read_engine.dispose()


@contextlib.asynccontextmanager
async def primary_reader(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """An autocommit connection to the primary for a command's own look-ups.

    For reads of the write tables that need no transaction — and on SQLite must not take the
    write lock — such as refusing a duplicate before paying for bcrypt, or finding the user
    who logs in (the primary, so a just-created account can log in with a lagging replica).
    """
    async with engine.connect() as connection:
        yield await connection.execution_options(isolation_level="AUTOCOMMIT")
