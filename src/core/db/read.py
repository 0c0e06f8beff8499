"""The read side: the only handle queries get to the database.

A query receives a `ReadHandle`, never an engine, so it cannot be handed the write engine by
mistake (the types differ) and cannot open a transaction: every statement runs on the read
engine (a replica in production) in autocommit mode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from src.core.db.driver import DriverConnections

T = TypeVar("T")


class ReadHandle:
    __slots__ = ("_drivers", "_engine")

    def __init__(self, engine: AsyncEngine, drivers: DriverConnections) -> None:
        self._engine = engine
        self._drivers = drivers

    @property
    def dialect(self) -> str:
        """`postgresql` or `sqlite`: for the few queries written per backend (search)."""
        return self._engine.dialect.name

    @property
    def driver(self) -> str:
        """`asyncpg`, `aiosqlite`, …: for the hot reads that run on the driver's connection."""
        return self._drivers.driver

    async def on_driver(
        self, run: Callable[[Any], Awaitable[T]], *, operation: str, collection: str
    ) -> T:
        """`run(driver_connection)` on a read-engine connection (see `src.core.db.driver`)."""
        return await self._drivers.run(run, operation=operation, collection=collection)

    async def all(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        async with self._engine.connect() as connection:
            return (await connection.execute(statement, parameters)).all()

    async def first(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Row[Any] | None:
        async with self._engine.connect() as connection:
            return (await connection.execute(statement, parameters)).first()

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        async with self._engine.connect() as connection:
            return (await connection.execute(statement, parameters)).scalar()
