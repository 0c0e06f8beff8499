"""The token budget's lease: one call of a user in flight at a time, released on failure,
expiring after a crash."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from src.core.ai.budget import TokenBudget, seconds_to_midnight
from src.core.ai.port import AIQuotaExceeded, AIUnavailable
from src.core.db.uow import command_transaction
from tests.helpers import authed_user


def test_seconds_to_midnight_counts_to_the_next_utc_day() -> None:
    assert seconds_to_midnight(dt.datetime(2026, 12, 2, 23, 59, 30, tzinfo=dt.UTC)) == 30
    assert seconds_to_midnight(dt.datetime(2026, 12, 2, 0, 0, 0, tzinfo=dt.UTC)) == 86400
    assert seconds_to_midnight(dt.datetime(2026, 12, 2, 23, 59, 59, 999, tzinfo=dt.UTC)) == 1


async def _budget(client: Any, **kwargs: Any) -> TokenBudget:
    engine = client.app.state.resources.database.write_engine
    options = {"lease_seconds": 30.0, "wait_seconds": 0.2, **kwargs}
    return TokenBudget(engine, 100, **options)


async def test_a_second_call_waits_for_the_first_and_a_stuck_one_is_refused(
    make_client: Callable[..., Any],
) -> None:
    async with make_client() as client:
        user = uuid.UUID((await authed_user(client))["id"])
        budget = await _budget(client)
        first = await budget.admit(user)
        with pytest.raises(AIUnavailable) as raised:  # in flight for longer than the wait
            await budget.admit(user)
        assert 1 <= raised.value.retry_after <= 30
        waiting = asyncio.create_task(budget.admit(user))
        await asyncio.sleep(0.05)
        await budget.release(first)  # the first call ends: the waiting one is admitted
        second = await waiting
        assert second.lease_id != first.lease_id
        await budget.release(second)
        assert await budget.used(user) == 0


async def test_a_crashed_call_leaves_a_lease_that_expires(
    make_client: Callable[..., Any],
) -> None:
    async with make_client() as client:
        user = uuid.UUID((await authed_user(client))["id"])
        budget = await _budget(client, lease_seconds=0.3, wait_seconds=2.0)
        await budget.admit(user)  # never released nor charged: the process "died"
        later = await budget.admit(user)  # admitted once the lease has expired
        await budget.release(later)


async def test_the_charge_commits_with_the_command_or_not_at_all(
    make_client: Callable[..., Any],
) -> None:
    async with make_client() as client:
        user = uuid.UUID((await authed_user(client))["id"])
        resources = client.app.state.resources
        budget = await _budget(client)
        ticket = await budget.admit(user)

        async def charge_then_fail() -> None:
            async with command_transaction(resources.unit_of_work()) as uow:
                await budget.charge(uow, ticket, 40)
                raise RuntimeError("the command failed after the charge")

        with pytest.raises(RuntimeError):
            await charge_then_fail()
        assert await budget.used(user) == 0
        await budget.release(ticket)
        ticket = await budget.admit(user)
        async with command_transaction(resources.unit_of_work()) as uow:
            await budget.charge(uow, ticket, 40)
        assert await budget.used(user) == 40
        # the charge gave the lease back: the next call is admitted at once
        again = await budget.admit(user)
        async with command_transaction(resources.unit_of_work()) as uow:
            await budget.charge(uow, again, 70)
        assert await budget.used(user) == 110  # over by less than one call
        with pytest.raises(AIQuotaExceeded):
            await budget.admit(user)
