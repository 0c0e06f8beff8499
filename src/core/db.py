"""Database access: the write and read engines and the unit of work.

* The **write engine** talks to the primary. Commands use it through a `UnitOfWork`, which
  holds one connection and one transaction, dispatches the command's domain events to the
  projectors inside that transaction, commits exactly once, and then runs after-commit hooks
  (cache invalidation must never run before the commit, or a concurrent reader could refill
  the cache with the old row).
* The **read engine** talks to `READ_DATABASE_URL` (a streaming replica in production; the same
  database by default). Queries use it in autocommit mode: one round trip per statement, no
  BEGIN/COMMIT.

On SQLite (the embedded default) every connection runs in WAL mode with a busy timeout and
foreign keys on, and write transactions start with `BEGIN IMMEDIATE`, so two writers queue on
the database lock instead of failing when one upgrades a read lock.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loguru import logger
from sqlalchemy import event
from sqlalchemy.engine import Result, make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

from src.core.events import DomainEvent, EventDispatcher
from src.settings import Settings

EngineRole = Literal["write", "read"]
AfterCommitHook = Callable[[], Awaitable[None]]
FinalStep = Callable[[AsyncConnection], Awaitable[None]]


# A pooled connection that sat idle longer than this is pinged before it is handed out.
PING_IDLE_SECONDS = 1.0


def create_engine(url: str, settings: Settings, role: EngineRole) -> AsyncEngine:
    """An async engine for `url`, tuned for its backend and role."""
    options: dict[str, Any] = {"pool_recycle": 1800}
    if role == "read":
        options["isolation_level"] = "AUTOCOMMIT"
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        options["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
        options.update(pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
        options["pool_timeout"] = settings.db_pool_timeout_seconds
        engine = create_async_engine(url, **options)
        _tune_sqlite(engine, settings, role)
        ping_when_idle(engine)
        return engine
    options.update(
        pool_size=settings.db_pool_size,
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
    engine = create_async_engine(url, **options)
    ping_when_idle(engine)
    return engine


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
            record.info["checked_in_at"] = time.monotonic()

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


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a file-backed SQLite database (`./var` by default)."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError:  # left to the first connection, which answers 503
            logger.warning("cannot create the folder of SQLite database {}", database)


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

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The process's two engines. Created in the application's lifespan, disposed in it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.write_engine = create_engine(settings.database_url, settings, "write")
        self.read_engine = create_engine(settings.effective_read_database_url, settings, "read")

    @property
    def engines(self) -> dict[EngineRole, AsyncEngine]:
        return {"write": self.write_engine, "read": self.read_engine}

    async def dispose(self) -> None:
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


# --- unit of work ---------------------------------------------------------------------------


@dataclass(slots=True)
class CommitGate:
    """Lets a request-level owner (the idempotency middleware) take over the final COMMIT.

    When a gate is open for the current request, `UnitOfWork.commit()` runs the projectors and
    then hands its still-open transaction to the gate instead of committing; the owner adds
    its own statement (the stored response) and commits both together.
    """

    unit_of_work: UnitOfWork | None = None


commit_gate: contextvars.ContextVar[CommitGate | None] = contextvars.ContextVar(
    "commit_gate", default=None
)


@dataclass
class UnitOfWork:
    """One connection, one transaction and one commit for one command.

    ```
    async with UnitOfWork(db.write_engine, dispatcher) as uow:
        await uow.execute(insert(users).values(...))
        uow.emit(UserSignedUp(...))
        await uow.commit()
    ```
    Leaving the block without `commit()` rolls everything back.
    """

    engine: AsyncEngine
    dispatcher: EventDispatcher
    _connection: AsyncConnection | None = field(default=None, init=False)
    _events: list[DomainEvent] = field(default_factory=list, init=False)
    _after_commit: list[AfterCommitHook] = field(default_factory=list, init=False)
    _state: Literal["new", "open", "handed_over", "done"] = field(default="new", init=False)

    async def __aenter__(self) -> UnitOfWork:
        self._connection = await self.engine.connect()
        try:
            await self._connection.begin()
        except BaseException:
            await self._connection.close()
            raise
        self._state = "open"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._state == "open":
            await self.rollback()

    def reader(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """An autocommit connection to the primary, outside this unit's transaction."""
        return primary_reader(self.engine)

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None or self._state != "open":
            raise RuntimeError("the unit of work is not open")
        return self._connection

    async def execute(self, statement: Executable, *args: Any, **kwargs: Any) -> Result[Any]:
        return await self.connection.execute(statement, *args, **kwargs)

    def emit(self, event_: DomainEvent) -> None:
        """Record a domain event; projectors see it before the commit, in this transaction."""
        self._events.append(event_)

    def after_commit(self, hook: AfterCommitHook) -> None:
        """Run `hook` once the transaction has committed (never if it rolls back)."""
        self._after_commit.append(hook)

    async def commit(self) -> None:
        """Project the recorded events, then commit (or hand the commit to the request's gate).

        A unique-constraint violation raised by a projector or by the final statements surfaces
        here as `IntegrityError`, for the use case to turn into a 409.
        """
        connection = self.connection
        while self._events:
            await self.dispatcher.dispatch(connection, self._events.pop(0))
        gate = commit_gate.get()
        if gate is not None:
            if gate.unit_of_work is not None:
                raise RuntimeError("one request may commit only one unit of work")
            gate.unit_of_work = self
            self._state = "handed_over"
            return
        await self.finish()

    async def finish(self, final: FinalStep | None = None) -> None:
        """Run `final` on this transaction, COMMIT, close, then run the after-commit hooks.

        `final` is how the request-level owner of a handed-over commit adds its own writes
        (the stored idempotent response); if it raises, everything rolls back.
        """
        connection = self._connection
        if connection is None or self._state not in ("open", "handed_over"):
            raise RuntimeError("the unit of work is not open")
        try:
            if final is not None:
                await final(connection)
            await connection.commit()
        except BaseException:
            self._state = "done"
            await _close_quietly(connection, rollback=True)
            raise
        self._state = "done"
        await connection.close()
        await self._run_after_commit()

    async def rollback(self) -> None:
        connection = self._connection
        self._state = "done"
        self._events.clear()
        self._after_commit.clear()
        if connection is not None:
            await _close_quietly(connection, rollback=True)

    async def _run_after_commit(self) -> None:
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            try:
                await hook()
            except Exception:  # a failed hook must not turn a committed command into an error
                logger.exception("after-commit hook failed")


async def _close_quietly(connection: AsyncConnection, *, rollback: bool) -> None:
    try:
        if rollback and connection.in_transaction():
            await connection.rollback()
    except Exception:  # the connection may already be gone; the pool discards it
        logger.opt(exception=True).debug("rollback failed")
    finally:
        try:
            await connection.close()
        except Exception:
            logger.opt(exception=True).debug("close failed")


def violated_unique(error: IntegrityError, table: str, column: str) -> bool:
    """Whether `error` is the unique constraint on `table.column` (named by convention)."""
    message = str(error.orig)
    return f"uq_{table}_{column}" in message or f"{table}.{column}" in message


UnitOfWorkFactory = Callable[[], UnitOfWork]
