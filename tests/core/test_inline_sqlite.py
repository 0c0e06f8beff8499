"""SQLite's hot statements on the loop: they read the newest commit, never wait for a lock,
and go back to the pool's threads for a while after a statement that read the disk."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from src.core.db import inline_sqlite
from src.core.db.driver import DriverConnections
from src.core.db.engines import create_engine, held_driver_connections
from src.core.db.inline_sqlite import InlineSQLite, inline_path
from src.settings import Settings
from tests.helpers import pool_checkouts


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}"
    created = create_engine(url, Settings(database_url=url), "write")
    async with created.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    try:
        yield created
    finally:
        await created.dispose()


async def _bodies(driver: Any) -> list[str]:
    rows = await driver.execute_fetchall("SELECT body FROM notes ORDER BY id", {})
    return [row[0] for row in rows]


def _inline(engine: AsyncEngine, **options: Any) -> DriverConnections:
    path = inline_path(engine.url)
    assert path is not None
    return DriverConnections(engine, keep=1, hold_seconds=60, inline=InlineSQLite(path, **options))


async def test_a_statement_runs_on_the_loop_and_reads_the_newest_commit(
    engine: AsyncEngine,
) -> None:
    drivers = _inline(engine)
    try:
        checkouts = pool_checkouts(engine)
        assert await drivers.run(_bodies, operation="SELECT", collection="notes") == []
        assert checkouts == []  # the pool's threads were never asked
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO notes (body) VALUES ('written')"))
        checkouts.clear()
        assert await drivers.run(_bodies, operation="SELECT", collection="notes") == ["written"]
        assert checkouts == []
    finally:
        await drivers.close()


async def test_after_a_disk_read_the_threads_answer_until_the_cool_down_ends(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = itertools.count()
    monkeypatch.setattr(inline_sqlite, "_disk_reads", lambda: next(reads))  # always grew
    drivers = _inline(engine, cool_down_seconds=0.2)
    checkouts = pool_checkouts(engine)
    try:
        await drivers.run(_bodies, operation="SELECT", collection="notes")  # on the loop
        assert checkouts == []
        await drivers.run(_bodies, operation="SELECT", collection="notes")
        assert len(checkouts) == 1  # on a pooled connection's thread
        monkeypatch.setattr(inline_sqlite.time, "monotonic", lambda: float("inf"))
        await drivers.run(_bodies, operation="SELECT", collection="notes")
        assert len(checkouts) == 1  # the cool-down is over: on the loop again
    finally:
        await drivers.close()


class _LockedConnection:
    def execute(self, *_: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    def close(self) -> None:
        pass


async def test_a_locked_database_is_read_on_the_threads_not_waited_for(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    drivers = _inline(engine)
    monkeypatch.setattr(InlineSQLite, "_open", lambda self: _LockedConnection())
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO notes (body) VALUES ('kept')"))
    checkouts = pool_checkouts(engine)
    try:
        assert await drivers.run(_bodies, operation="SELECT", collection="notes") == ["kept"]
        assert len(checkouts) == 1
    finally:
        await drivers.close()


async def test_a_database_that_cannot_be_opened_read_only_is_read_on_the_threads(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    drivers = DriverConnections(
        engine, keep=1, hold_seconds=60, inline=InlineSQLite(str(tmp_path / "missing.db"))
    )
    checkouts = pool_checkouts(engine)
    try:
        assert await drivers.run(_bodies, operation="SELECT", collection="notes") == []
        assert len(checkouts) == 1
    finally:
        await drivers.close()


async def test_sqlite_inline_reads_false_keeps_every_statement_on_the_threads(
    engine: AsyncEngine,
) -> None:
    drivers = held_driver_connections(
        engine, Settings(database_url=str(engine.url), sqlite_inline_reads=False)
    )
    checkouts = pool_checkouts(engine)
    try:
        await drivers.run(_bodies, operation="SELECT", collection="notes")
        assert len(checkouts) == 1
    finally:
        await drivers.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite+aiosqlite:////var/lib/inkwell.db", "/var/lib/inkwell.db"),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite://", None),
        ("sqlite+aiosqlite:///file:shared?mode=memory&uri=true", None),
    ],
)
def test_only_a_plain_database_file_is_read_on_the_loop(url: str, path: str | None) -> None:
    assert inline_path(make_url(url)) == path
