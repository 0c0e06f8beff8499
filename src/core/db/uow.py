"""The unit of work: one transaction per command, ended once, by the boundary.

A use case receives a `UnitOfWork` — the protocol below. It writes (`execute`), records domain
events (`emit`) and asks for work after the commit (`after_commit`). It never commits; it
cannot, the protocol has no `commit`. The boundary that opened the unit — the HTTP command
boundary (`src/middleware/boundary.py`), or `command_transaction` for the CLI and the event
worker — holds the `SqlUnitOfWork` behind it and ends it exactly once:

`commit()`
  1. each recorded event goes to the projectors subscribed to it: the read tables change in
     this transaction, so they can never disagree with the write tables (a projector may
     hand back after-commit work, run in step 5);
  2. the event recorders run (the extension point where the outbox appends its rows; a
     recorder may hand back after-commit work too);
  3. the boundary's final steps run (the stored answer of an idempotent request);
  4. one COMMIT, and the connection goes back to the pool;
  5. the after-commit hooks run (cache invalidation). A failing hook is logged; it never
     turns a committed command into an error.

`rollback()` drops everything: writes, events, final steps and hooks.

The connection is taken at the first statement, not before: CPU work a use case does first
(bcrypt) holds no pooled connection and, on SQLite, no write lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

from loguru import logger
from opentelemetry import trace
from sqlalchemy.engine import Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from src.core.db.engines import primary_reader
from src.core.events import DomainEvent, EventDispatcher

tracer = trace.get_tracer(__name__)

AfterCommitHook = Callable[[], Awaitable[None]]
FinalStep = Callable[[AsyncConnection], Awaitable[None]]
# A recorder may hand back work for after the COMMIT (the outbox wakes its local runner).
EventRecorder = Callable[
    [AsyncConnection, Sequence[DomainEvent]], Awaitable[AfterCommitHook | None]
]


class UnitOfWork(Protocol):
    """What a command's use case may do with its transaction."""

    @property
    def dialect(self) -> str:
        """`postgresql` or `sqlite`, for the few statements written per backend."""
        ...

    async def execute(self, statement: Executable, *args: Any, **kwargs: Any) -> Result[Any]:
        """Run a statement in the command's transaction (opened at the first one)."""
        ...

    def emit(self, event: DomainEvent) -> None:
        """Record a domain event; its projectors run in this transaction, before the commit."""
        ...

    def after_commit(self, hook: AfterCommitHook) -> None:
        """Run `hook` once the transaction has committed (never if it rolls back)."""
        ...

    def reader(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """An autocommit connection to the primary, outside this transaction.

        For look-ups of the write tables that need no transaction (and on SQLite must not
        take the write lock), such as refusing a duplicate before paying for bcrypt.
        """
        ...


State = Literal["new", "open", "done"]


class SqlUnitOfWork:
    """The unit of work on the write engine; ended by the boundary that created it."""

    def __init__(
        self,
        engine: AsyncEngine,
        dispatcher: EventDispatcher,
        recorders: Sequence[EventRecorder] = (),
    ) -> None:
        self._engine = engine
        self._dispatcher = dispatcher
        self._recorders = tuple(recorders)
        self._connection: AsyncConnection | None = None
        self._state: State = "new"
        self._events: list[DomainEvent] = []
        self._final_steps: list[FinalStep] = []
        self._after_commit: list[AfterCommitHook] = []

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def state(self) -> State:
        return self._state

    async def execute(self, statement: Executable, *args: Any, **kwargs: Any) -> Result[Any]:
        connection = await self._open()
        return await connection.execute(statement, *args, **kwargs)

    def emit(self, event: DomainEvent) -> None:
        self._require_usable()
        self._events.append(event)

    def after_commit(self, hook: AfterCommitHook) -> None:
        self._require_usable()
        self._after_commit.append(hook)

    def reader(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return primary_reader(self._engine)

    # --- the boundary's side ------------------------------------------------------------

    def before_commit(self, step: FinalStep) -> None:
        """Run `step` on this transaction after the projections, just before the COMMIT."""
        self._require_usable()
        self._final_steps.append(step)

    async def commit(self) -> None:
        """Project, record, run the final steps, COMMIT once, then run after-commit hooks.

        A unit that wrote nothing and has no final step commits without a connection. If any
        step or the COMMIT raises, everything rolls back and the error propagates.
        """
        self._require_usable()
        if self._connection is None and not self._events and not self._final_steps:
            self._state = "done"
            await self._run_after_commit()
            return
        try:
            with tracer.start_as_current_span("unit_of_work.commit") as span:
                span.set_attribute("inkwell.events", len(self._events))
                connection = await self._open()
                events = self._events
                for event in events:
                    self._after_commit += await self._dispatcher.dispatch(connection, event)
                if events:
                    for record in self._recorders:
                        recorded = await record(connection, events)
                        if recorded is not None:
                            self._after_commit.append(recorded)
                for step in self._final_steps:
                    await step(connection)
                await connection.commit()
        except BaseException:
            await self.rollback()
            raise
        self._state = "done"
        self._connection = None
        await _close_quietly(connection, rollback=False)
        await self._run_after_commit()

    async def rollback(self) -> None:
        """Drop every write, event, final step and hook. Safe to call more than once."""
        connection, self._connection = self._connection, None
        self._state = "done"
        self._events.clear()
        self._final_steps.clear()
        self._after_commit.clear()
        if connection is not None:
            await _close_quietly(connection, rollback=True)

    # --- internals ----------------------------------------------------------------------

    async def _open(self) -> AsyncConnection:
        self._require_usable()
        if self._connection is not None:
            return self._connection
        connection = await self._engine.connect()
        try:
            await connection.begin()
        except BaseException:
            await _close_quietly(connection, rollback=False)
            raise
        self._connection = connection
        self._state = "open"
        return connection

    def _require_usable(self) -> None:
        if self._state == "done":
            raise RuntimeError("this unit of work has already been committed or rolled back")

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


UnitOfWorkFactory = Callable[[], SqlUnitOfWork]


@contextlib.asynccontextmanager
async def command_transaction(uow: SqlUnitOfWork) -> AsyncIterator[UnitOfWork]:
    """The boundary for commands run outside HTTP (the CLI, event handlers): commit when the
    block ends normally, roll back when it raises."""
    try:
        yield uow
    except BaseException:
        await uow.rollback()
        raise
    await uow.commit()


def violated_unique(error: IntegrityError, table: str, column: str) -> bool:
    """Whether `error` is the unique constraint on `table.column` (named by convention)."""
    message = str(error.orig)
    return f"uq_{table}_{column}" in message or f"{table}.{column}" in message
