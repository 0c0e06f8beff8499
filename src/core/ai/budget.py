"""Each user's daily AI token budget (`AI_DAILY_TOKEN_BUDGET` tokens a UTC day), race-safe.

The table `ai_usage` holds one row per user and UTC day: `tokens` charged so far, and the
*lease* of the one AI call the user may have in flight (`lease_id`, `lease_expires_at`).

1. **Admission** (`admit`, before the provider is called, in a short transaction of its own):
   the row is created if missing, then one conditional UPDATE claims the lease —
   `SET lease_id = :new WHERE tokens < :budget AND (lease_id IS NULL OR lease_expires_at <
   :now)`. The database applies it atomically (a row lock on PostgreSQL, the write lock on
   SQLite), so of any number of concurrent calls exactly one holds the lease at a time. A call
   that finds the budget spent gets `AIQuotaExceeded` (429, `Retry-After` = seconds to the
   next UTC midnight); one that finds another call of the same user in flight waits for it
   (polling, never holding a connection) for at most `wait_seconds`, then `AIUnavailable`.
2. **The call** runs with no database connection held.
3. **The charge** (`charge`, in the command's own unit of work, so it commits with what the
   call produced or not at all) adds the call's tokens and gives the lease back in the same
   UPDATE. A call that fails at the provider stores nothing: `release` gives the lease back
   and charges nothing.

The bound: a call is admitted only while `tokens < budget`, and no other call of the same user
runs until its tokens are committed, so a user's usage never exceeds the budget by more than
one call's tokens, however many requests race (tests/ai/test_budget.py). A request that dies
between admission and charge (a killed process, a rolled-back transaction) leaves a lease that
expires after `lease_seconds` (the provider deadline plus a margin): the user is never locked
out for longer than that, and is charged nothing for the lost call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncEngine

from src.core.ai.port import AIQuotaExceeded, AIUnavailable
from src.core.db.uow import UnitOfWork
from src.core.tables import ai_usage, utcnow


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted call: whose, which UTC day it is charged to, and its lease."""

    user_id: uuid.UUID
    day: dt.date
    lease_id: str


def seconds_to_midnight(now: dt.datetime) -> int:
    """Whole seconds (at least 1) from `now` to the next UTC midnight."""
    now = now.astimezone(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return max(1, math.ceil((midnight - now).total_seconds()))


class TokenBudget:
    def __init__(
        self,
        engine: AsyncEngine,
        daily_tokens: int,
        *,
        lease_seconds: float,
        wait_seconds: float,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self.daily_tokens = daily_tokens
        self._lease = dt.timedelta(seconds=lease_seconds)
        self._wait_seconds = wait_seconds
        self._clock = clock

    async def admit(self, user_id: uuid.UUID) -> Ticket:
        """Claim the user's lease for one call; `AIQuotaExceeded` when today's budget is spent,
        `AIUnavailable` when another call of theirs stays in flight for `wait_seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_seconds
        pause = 0.02
        while True:
            now = self._clock()
            ticket = Ticket(user_id, now.astimezone(dt.UTC).date(), uuid.uuid4().hex)
            tokens, lease_expires_at = await self._try_claim(ticket, now)
            if tokens is None:
                return ticket
            if tokens >= self.daily_tokens:
                raise AIQuotaExceeded(retry_after=seconds_to_midnight(now))
            remaining = deadline - loop.time()
            if remaining <= 0:
                wait = (
                    math.ceil((lease_expires_at - now).total_seconds()) if lease_expires_at else 1
                )
                raise AIUnavailable("another AI call of this user is in flight", retry_after=wait)
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.25)

    async def release(self, ticket: Ticket) -> None:
        """Give the lease back without charging (the call failed, or stored nothing)."""
        async with self._engine.begin() as connection:
            await connection.execute(
                update(ai_usage)
                .where(self._row(ticket), ai_usage.c.lease_id == ticket.lease_id)
                .values(lease_id=None, lease_expires_at=None, updated_at=self._clock())
            )

    async def charge(self, uow: UnitOfWork, ticket: Ticket, tokens: int) -> None:
        """Add `tokens` to the ticket's day and give its lease back, in the command's
        transaction (committed with the call's results, or rolled back with them). Charged
        even if the lease expired meanwhile: tokens the provider spent are always counted."""
        still_ours = ai_usage.c.lease_id == ticket.lease_id
        await uow.execute(
            update(ai_usage)
            .where(self._row(ticket))
            .values(
                tokens=ai_usage.c.tokens + max(0, tokens),
                lease_id=case((still_ours, None), else_=ai_usage.c.lease_id),
                lease_expires_at=case((still_ours, None), else_=ai_usage.c.lease_expires_at),
                updated_at=self._clock(),
            )
        )

    async def used(self, user_id: uuid.UUID, day: dt.date | None = None) -> int:
        """The tokens charged to `user_id` on `day` (today, UTC, by default)."""
        day = day or self._clock().astimezone(dt.UTC).date()
        async with self._engine.connect() as connection:
            found = (
                await connection.execute(
                    select(ai_usage.c.tokens).where(
                        ai_usage.c.user_id == user_id, ai_usage.c.day == day
                    )
                )
            ).scalar()
        return int(found or 0)

    # --- internals ----------------------------------------------------------------------

    @staticmethod
    def _row(ticket: Ticket) -> Any:
        return and_(ai_usage.c.user_id == ticket.user_id, ai_usage.c.day == ticket.day)

    async def _try_claim(
        self, ticket: Ticket, now: dt.datetime
    ) -> tuple[int | None, dt.datetime | None]:
        """(None, None) when the lease is now the ticket's; else the day's tokens and when the
        lease in the way expires."""
        dialect_insert = (
            postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        )
        async with self._engine.begin() as connection:
            await connection.execute(
                dialect_insert(ai_usage)
                .values(user_id=ticket.user_id, day=ticket.day, tokens=0, updated_at=now)
                .on_conflict_do_nothing(index_elements=["user_id", "day"])
            )
            claimed = await connection.execute(
                update(ai_usage)
                .where(
                    self._row(ticket),
                    ai_usage.c.tokens < self.daily_tokens,
                    or_(ai_usage.c.lease_id.is_(None), ai_usage.c.lease_expires_at < now),
                )
                .values(
                    lease_id=ticket.lease_id,
                    lease_expires_at=now + self._lease,
                    updated_at=now,
                )
            )
            if cast(CursorResult[Any], claimed).rowcount == 1:
                return None, None
            row = (
                await connection.execute(
                    select(ai_usage.c.tokens, ai_usage.c.lease_expires_at).where(self._row(ticket))
                )
            ).one()
            return int(row.tokens), row.lease_expires_at
