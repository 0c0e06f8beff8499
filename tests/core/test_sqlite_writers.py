"""SQLite's write transactions of one process take turns on the loop, not in SQLite's
sleeping busy handler: a second writer does not even ask SQLite until the first is done."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sqlalchemy import event, text

from src.core.db.engines import create_engine, writer_turns
from src.settings import Settings

SQLITE = "sqlite+aiosqlite:///{folder}/writers.db"


async def _engine(folder: os.PathLike[str], busy_timeout_ms: int = 5000) -> Any:
    url = SQLITE.format(folder=folder)
    engine = create_engine(
        url, Settings(database_url=url, sqlite_busy_timeout_ms=busy_timeout_ms), "write"
    )
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (writer TEXT NOT NULL)"))
    return engine


def _begins(engine: Any) -> list[str]:
    issued: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement == "BEGIN IMMEDIATE":
            issued.append(statement)

    return issued


async def test_a_second_writer_waits_its_turn_before_asking_sqlite(
    tmp_path: os.PathLike[str],
) -> None:
    engine = await _engine(tmp_path)
    begins = _begins(engine)
    first_holds, first_may_commit = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO notes VALUES ('first')"))
            first_holds.set()
            await first_may_commit.wait()

    async def second() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO notes VALUES ('second')"))

    try:
        holder = asyncio.create_task(first())
        await first_holds.wait()
        waiter = asyncio.create_task(second())
        await asyncio.sleep(0.3)  # time enough for the second to reach SQLite, if it could
        waited = (len(begins), waiter.done())
        first_may_commit.set()
        await asyncio.gather(holder, waiter)
        began = len(begins)
        async with engine.connect() as connection:
            writers = (await connection.execute(text("SELECT writer FROM notes"))).scalars().all()
    finally:
        await engine.dispose()

    assert waited == (1, False)  # only the first's BEGIN reached SQLite
    assert sorted(writers) == ["first", "second"]
    assert began == 2


async def test_a_turn_is_handed_on_by_a_rollback_and_a_failed_transaction(
    tmp_path: os.PathLike[str],
) -> None:
    engine = await _engine(tmp_path)
    try:
        async with engine.connect() as connection:
            await connection.begin()
            await connection.execute(text("INSERT INTO notes VALUES ('rolled back')"))
            await connection.rollback()
            after_rollback = writer_turns(engine).taken  # still checked out
        try:
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO notes VALUES ('failed')"))
                raise RuntimeError("the command failed")
        except RuntimeError:
            pass
        after_failure = writer_turns(engine).taken
        async with engine.connect() as connection:
            await connection.begin()
            await connection.execute(text("INSERT INTO notes VALUES ('kept')"))
            await connection.commit()
            after_commit = writer_turns(engine).taken  # still checked out
        async with engine.connect() as connection:
            writers = (await connection.execute(text("SELECT writer FROM notes"))).scalars().all()
    finally:
        await engine.dispose()

    assert (after_rollback, after_failure, after_commit) == (False, False, False)
    assert writers == ["kept"]
