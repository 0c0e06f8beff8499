"""The hot statements' driver connections: held checked out of the engine's pool between
statements, at most `keep` of them and for at most `hold_seconds`, and never a broken one."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from src.core.db.driver import DriverConnections
from src.core.db.engines import create_engine
from tests.conftest import Backend
from tests.helpers import pool_checkouts

HOLD = 0.2


@pytest.fixture
async def engine(backend: Backend) -> AsyncIterator[AsyncEngine]:
    created = create_engine(backend.database_url, backend.settings(db_pool_size=4), "read")
    try:
        yield created
    finally:
        await created.dispose()


def _checked_out(engine: AsyncEngine) -> int:
    return int(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


async def _which(driver: Any) -> Any:
    return driver


def _statement(driver_name: str) -> Any:
    async def select_one(driver: Any) -> Any:
        if driver_name == "asyncpg":
            return await driver.fetchval("SELECT 1")
        return (await driver.execute_fetchall("SELECT 1"))[0][0]

    return select_one


async def test_a_connection_is_held_between_statements_not_checked_in(
    engine: AsyncEngine,
) -> None:
    drivers = DriverConnections(engine, keep=2, hold_seconds=60)
    checkouts = pool_checkouts(engine)
    try:
        first = await drivers.run(_which, operation="SELECT", collection="t")
        second = await drivers.run(_which, operation="SELECT", collection="t")
        assert first is second
        assert len(checkouts) == 1  # the pool was asked once
        assert _checked_out(engine) == 1
        assert drivers.held == 1
        select_one = _statement(drivers.driver)
        assert await drivers.run(select_one, operation="SELECT", collection="t") == 1
    finally:
        await drivers.close()
    assert _checked_out(engine) == 0


async def _started(drivers: DriverConnections, count: int) -> None:
    while drivers.in_use < count:
        await asyncio.sleep(0.005)


async def _holding(
    drivers: DriverConnections, count: int
) -> tuple[asyncio.Event, list[asyncio.Task[Any]]]:
    """`count` statements, started, that keep their connections until the gate opens."""
    gate = asyncio.Event()

    async def wait_then_answer(driver: Any) -> Any:
        await gate.wait()
        return driver

    running = [
        asyncio.create_task(drivers.run(wait_then_answer, operation="SELECT", collection="t"))
        for _ in range(count)
    ]
    await _started(drivers, count)
    return gate, running


def _unavailable(driver: str) -> Exception:
    """What the driver raises when the database is gone."""
    if driver == "asyncpg":
        return asyncpg.PostgresConnectionError("gone")
    return sqlite3.OperationalError("disk I/O error")


async def test_no_more_than_keep_are_used_at_once_the_rest_wait_their_turn(
    engine: AsyncEngine,
) -> None:
    drivers = DriverConnections(engine, keep=2, hold_seconds=60)
    gate = asyncio.Event()
    running_now = 0
    most = 0

    async def wait_then_answer(driver: Any) -> Any:
        nonlocal running_now, most
        running_now += 1
        most = max(most, running_now)
        await gate.wait()
        running_now -= 1
        return driver

    try:
        running = [
            asyncio.create_task(drivers.run(wait_then_answer, operation="SELECT", collection="t"))
            for _ in range(6)
        ]
        async with asyncio.timeout(30):  # both statements running (a connection may take a while)
            while running_now < 2:
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # time for a third to start, were it let through
        assert _checked_out(engine) == 2  # the other four wait for these, not for the pool
        gate.set()
        used = await asyncio.gather(*running)
        assert most == 2
        assert len({id(found) for found in used}) == 2
        assert drivers.held == 2
    finally:
        await drivers.close()
    assert _checked_out(engine) == 0


async def test_a_statement_waits_at_most_wait_seconds_for_a_connection(
    engine: AsyncEngine,
) -> None:
    drivers = DriverConnections(engine, keep=1, hold_seconds=60, wait_seconds=0.1)
    try:
        gate, (busy,) = await _holding(drivers, 1)
        with pytest.raises(sa_exc.TimeoutError):
            await drivers.run(_which, operation="SELECT", collection="t")
        gate.set()
        await busy
        await drivers.run(_which, operation="SELECT", collection="t")  # nothing was lost
        assert drivers.held == 1
        assert drivers.in_use == 0
    finally:
        await drivers.close()


async def test_a_waiter_cancelled_as_it_is_served_passes_the_connection_on(
    engine: AsyncEngine,
) -> None:
    drivers = DriverConnections(engine, keep=1, hold_seconds=60)
    try:
        gate, (busy,) = await _holding(drivers, 1)
        cancelled = asyncio.create_task(drivers.run(_which, operation="SELECT", collection="t"))
        served = asyncio.create_task(drivers.run(_which, operation="SELECT", collection="t"))
        await asyncio.sleep(0.02)  # both wait, `cancelled` first
        gate.set()
        await asyncio.sleep(0)  # `busy` gives its connection to `cancelled`...
        cancelled.cancel()  # ...which is cancelled before it runs
        await busy
        assert await asyncio.wait_for(served, 5) is not None  # it got the connection instead
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert drivers.in_use == 0
        assert drivers.held == 1
    finally:
        await drivers.close()


async def test_a_failed_statement_frees_its_place_for_a_waiter(engine: AsyncEngine) -> None:
    drivers = DriverConnections(engine, keep=1, hold_seconds=60)
    gate = asyncio.Event()

    async def wait_then_fail(_driver: Any) -> None:
        await gate.wait()
        raise ValueError("a bug in the statement's caller")

    try:
        failing = asyncio.create_task(
            drivers.run(wait_then_fail, operation="SELECT", collection="t")
        )
        await _started(drivers, 1)
        waiting = asyncio.create_task(drivers.run(_which, operation="SELECT", collection="t"))
        await asyncio.sleep(0.02)
        gate.set()
        with pytest.raises(ValueError, match="a bug"):
            await failing
        assert await asyncio.wait_for(waiting, 5) is not None  # on a fresh connection
        assert drivers.in_use == 0
    finally:
        await drivers.close()


async def test_an_idle_connection_goes_back_to_the_pool_after_hold_seconds(
    engine: AsyncEngine,
) -> None:
    drivers = DriverConnections(engine, keep=2, hold_seconds=HOLD)
    try:
        await drivers.run(_which, operation="SELECT", collection="t")
        assert _checked_out(engine) == 1
        deadline = time.monotonic() + 5
        while _checked_out(engine) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert _checked_out(engine) == 0
        assert drivers.held == 0
    finally:
        await drivers.close()


async def test_a_connection_idle_too_long_is_checked_out_again(engine: AsyncEngine) -> None:
    """Even when the timer has not run yet (a busy loop): the pool's checkout, with its
    ping after idling, hands it out again."""
    drivers = DriverConnections(engine, keep=2, hold_seconds=HOLD)
    checkouts = pool_checkouts(engine)
    try:
        await drivers.run(_which, operation="SELECT", collection="t")
        time.sleep(HOLD * 1.5)  # blocks the loop: the timer cannot run
        await drivers.run(_which, operation="SELECT", collection="t")
        assert len(checkouts) == 2
        assert _checked_out(engine) == 1
    finally:
        await drivers.close()


async def test_a_connection_whose_statement_failed_is_never_handed_out_again(
    engine: AsyncEngine,
) -> None:
    drivers = DriverConnections(engine, keep=2, hold_seconds=60)
    used: list[Any] = []

    async def fail(driver: Any) -> None:
        used.append(driver)
        raise ValueError("a bug in the statement's caller")

    try:
        with pytest.raises(ValueError, match="a bug"):
            await drivers.run(fail, operation="SELECT", collection="t")
        assert drivers.held == 0
        assert _checked_out(engine) == 0
        assert await drivers.run(_which, operation="SELECT", collection="t") is not used[0]
    finally:
        await drivers.close()


async def test_an_unreachable_database_is_a_connection_error_and_drops_the_idle_ones(
    engine: AsyncEngine,
) -> None:
    drivers = DriverConnections(engine, keep=2, hold_seconds=60)
    unavailable = _unavailable(drivers.driver)

    async def unreachable(_driver: Any) -> None:
        raise unavailable

    try:
        gate, running = await _holding(drivers, 2)
        gate.set()
        held = await asyncio.gather(*running)  # kept referenced: their ids stay theirs
        assert drivers.held == 2
        with pytest.raises(ConnectionError) as raised:
            await drivers.run(unreachable, operation="SELECT", collection="sessions")
        assert raised.value.__cause__ is unavailable
        assert "SELECT sessions" in str(raised.value)
        assert drivers.held == 0
        assert _checked_out(engine) == 0
        fresh = await drivers.run(_which, operation="SELECT", collection="t")
        assert all(fresh is not old for old in held)
    finally:
        await drivers.close()


async def test_after_close_nothing_is_held(engine: AsyncEngine) -> None:
    drivers = DriverConnections(engine, keep=2, hold_seconds=60)
    await drivers.run(_which, operation="SELECT", collection="t")
    await drivers.close()
    assert _checked_out(engine) == 0
    await drivers.run(_which, operation="SELECT", collection="t")  # still answers
    assert drivers.held == 0
    assert _checked_out(engine) == 0


async def test_failures_while_statements_wait_never_run_more_than_keep_at_once(
    engine: AsyncEngine,
) -> None:
    drivers = DriverConnections(engine, keep=2, hold_seconds=60)
    gate = asyncio.Event()
    running_now = 0
    most = 0

    calls = 0

    async def first_one_fails(driver: Any) -> Any:
        nonlocal running_now, most, calls
        calls += 1
        mine = calls
        running_now += 1
        most = max(most, running_now)
        try:
            await gate.wait()
            await asyncio.sleep(0.005)  # the others overlap it, as far as they may
            if mine == 1:  # the database went away: the idle ones are discarded too
                raise _unavailable(drivers.driver)
            return driver
        finally:
            running_now -= 1

    try:
        running = [
            asyncio.create_task(drivers.run(first_one_fails, operation="SELECT", collection="t"))
            for _ in range(8)
        ]
        await _started(drivers, 2)
        gate.set()
        outcomes = await asyncio.gather(*running, return_exceptions=True)
        assert sum(isinstance(o, ConnectionError) for o in outcomes) == 1
        assert most == 2
        assert drivers.in_use == 0
        assert drivers.held <= 2
    finally:
        await drivers.close()


async def test_a_pool_too_small_to_spare_one_holds_nothing(engine: AsyncEngine) -> None:
    drivers = DriverConnections(engine, keep=0, hold_seconds=60)
    try:
        await asyncio.gather(
            *(drivers.run(_which, operation="SELECT", collection="t") for _ in range(3))
        )
        assert drivers.held == 0
        assert _checked_out(engine) == 0
    finally:
        await drivers.close()


async def test_a_connection_idle_here_and_then_in_the_pool_is_pinged_by_the_pool(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its idle time here counts toward the pool's ping-after-idle window (1 s)."""
    dialect = engine.sync_engine.dialect
    pings: list[Any] = []
    real_ping = dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return bool(real_ping(dbapi_connection))

    monkeypatch.setattr(dialect, "do_ping", counted_ping)
    drivers = DriverConnections(engine, keep=1, hold_seconds=0.7)
    try:
        await drivers.run(_which, operation="SELECT", collection="t")
        while _checked_out(engine):  # held 0.7 s, then checked in by the timer
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.45)  # 1.15 s idle in all, 0.45 s of it in the pool
        await drivers.run(_which, operation="SELECT", collection="t")
        assert len(pings) == 1
    finally:
        await drivers.close()
