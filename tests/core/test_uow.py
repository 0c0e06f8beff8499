"""The unit of work's promises, on a real database of each backend (after Cosmic Python's
`test_uow.py`): nothing is written without the boundary's commit, a failure before it rolls
back write tables, read tables and final steps together, hooks run only after a commit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from src.core.db.engines import create_engine
from src.core.db.uow import SqlUnitOfWork, command_transaction
from src.core.events import DomainEvent, EventDispatcher
from src.core.tables import idempotency_records, users, users_read, utcnow
from tests.conftest import Backend


@dataclass(frozen=True, slots=True, kw_only=True)
class Written(DomainEvent):
    user_id: uuid.UUID


async def project(connection: AsyncConnection, event: Written) -> None:
    now = utcnow()
    await connection.execute(
        insert(users_read).values(
            id=event.user_id, name="n", email=f"{event.user_id}@example.com",
            display_name="n", role="creator", content_count=0, created_at=now, updated_at=now,
        )
    )  # fmt: skip


@pytest.fixture
async def engine(backend: Backend, make_client: object) -> AsyncIterator[AsyncEngine]:
    # `make_client` empties the tables first.
    engine = create_engine(backend.database_url, backend.settings(), "write")
    try:
        yield engine
    finally:
        await engine.dispose()


def dispatcher() -> EventDispatcher:
    subscribed = EventDispatcher()
    subscribed.subscribe(Written, project)
    return subscribed


def insert_user(user_id: uuid.UUID) -> object:
    now = utcnow()
    return insert(users).values(
        id=user_id, name="n", email=f"{user_id}@example.com", password_hash="x",
        display_name="n", role="creator", created_at=now, updated_at=now,
    )  # fmt: skip


async def count(engine: AsyncEngine, table: object, user_id: uuid.UUID) -> int:
    async with engine.connect() as connection:
        query = select(func.count()).select_from(table).where(table.c.id == user_id)  # type: ignore[attr-defined]
        return int((await connection.execute(query)).scalar_one())


async def write(uow: SqlUnitOfWork) -> uuid.UUID:
    user_id = uuid.uuid4()
    await uow.execute(insert_user(user_id))  # type: ignore[arg-type]
    uow.emit(Written(user_id=user_id))
    return user_id


async def test_nothing_is_written_without_the_commit(engine: AsyncEngine) -> None:
    uow = SqlUnitOfWork(engine, dispatcher())
    user_id = await write(uow)
    await uow.rollback()
    assert await count(engine, users, user_id) == 0
    assert await count(engine, users_read, user_id) == 0


async def test_commit_writes_the_write_table_and_its_projection_together(
    engine: AsyncEngine,
) -> None:
    uow = SqlUnitOfWork(engine, dispatcher())
    user_id = await write(uow)
    await uow.commit()
    assert await count(engine, users, user_id) == 1
    assert await count(engine, users_read, user_id) == 1


async def test_a_failing_projector_rolls_back_the_write_table_too(engine: AsyncEngine) -> None:
    failing = dispatcher()

    async def explode(connection: AsyncConnection, event: Written) -> None:
        raise RuntimeError("projector failed")

    failing.subscribe(Written, explode)
    uow = SqlUnitOfWork(engine, failing)
    user_id = await write(uow)
    with pytest.raises(RuntimeError, match="projector failed"):
        await uow.commit()
    assert await count(engine, users, user_id) == 0
    assert await count(engine, users_read, user_id) == 0


async def test_a_failing_final_step_rolls_back_everything(engine: AsyncEngine) -> None:
    uow = SqlUnitOfWork(engine, dispatcher())
    user_id = await write(uow)
    now = utcnow()

    async def store_then_fail(connection: AsyncConnection) -> None:
        await connection.execute(
            insert(idempotency_records).values(
                scope="anonymous", key=str(user_id), fingerprint="f", status="completed",
                created_at=now, expires_at=now,
            )
        )  # fmt: skip
        raise OperationalError("COMMIT", {}, ConnectionError("database gone"))

    uow.before_commit(store_then_fail)
    with pytest.raises(OperationalError):
        await uow.commit()
    assert await count(engine, users, user_id) == 0
    assert await count(engine, users_read, user_id) == 0
    async with engine.connect() as connection:
        stored = await connection.execute(
            select(func.count()).select_from(idempotency_records)
            .where(idempotency_records.c.key == str(user_id))
        )  # fmt: skip
        assert stored.scalar_one() == 0


async def test_after_commit_hooks_run_only_after_the_commit(engine: AsyncEngine) -> None:
    seen: list[int] = []
    uow = SqlUnitOfWork(engine, dispatcher())
    user_id = await write(uow)

    async def hook() -> None:  # sees the committed row from another connection
        seen.append(await count(engine, users, user_id))

    uow.after_commit(hook)
    assert seen == []
    await uow.commit()
    assert seen == [1]


async def test_no_hook_runs_after_a_rollback(engine: AsyncEngine) -> None:
    ran: list[str] = []
    uow = SqlUnitOfWork(engine, dispatcher())
    await write(uow)

    async def hook() -> None:
        ran.append("hook")

    uow.after_commit(hook)
    await uow.rollback()
    assert ran == []


async def test_a_projectors_after_commit_work_runs_after_the_commit(engine: AsyncEngine) -> None:
    """A projector knows which cached copies its rewrite made stale; it hands the dropping of
    them back to the unit of work, which runs it once the transaction has committed."""
    seen: list[int] = []
    with_followup = dispatcher()

    async def project_then_ask(connection: AsyncConnection, event: Written) -> Any:
        async def followup() -> None:  # sees the committed projection from another connection
            seen.append(await count(engine, users_read, event.user_id))

        return followup

    with_followup.subscribe(Written, project_then_ask)
    uow = SqlUnitOfWork(engine, with_followup)
    await write(uow)
    await uow.commit()
    assert seen == [1]


async def test_a_projectors_after_commit_work_never_runs_after_a_failed_commit(
    engine: AsyncEngine,
) -> None:
    ran: list[str] = []
    with_followup = dispatcher()

    async def ask(connection: AsyncConnection, event: Written) -> Any:
        async def followup() -> None:
            ran.append("followup")

        return followup

    async def explode(connection: AsyncConnection) -> None:
        raise RuntimeError("the final step failed")

    with_followup.subscribe(Written, ask)
    uow = SqlUnitOfWork(engine, with_followup)
    await write(uow)
    uow.before_commit(explode)
    with pytest.raises(RuntimeError):
        await uow.commit()
    assert ran == []


async def test_a_failing_hook_never_turns_a_commit_into_an_error(engine: AsyncEngine) -> None:
    ran: list[str] = []
    uow = SqlUnitOfWork(engine, dispatcher())
    user_id = await write(uow)

    async def broken() -> None:
        raise ConnectionError("cache down")

    async def next_hook() -> None:
        ran.append("next")

    uow.after_commit(broken)
    uow.after_commit(next_hook)
    await uow.commit()  # does not raise
    assert ran == ["next"]
    assert await count(engine, users, user_id) == 1


async def test_no_connection_is_taken_before_the_first_statement(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool
    uow = SqlUnitOfWork(engine, dispatcher())
    uow.emit(Written(user_id=uuid.uuid4()))
    uow.after_commit(lambda: _nothing())
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    await uow.execute(text("SELECT 1"))
    assert pool.checkedout() == 1  # type: ignore[attr-defined]
    await uow.rollback()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


async def _nothing() -> None:
    return None


async def test_a_unit_that_wrote_nothing_commits_without_a_connection(
    engine: AsyncEngine,
) -> None:
    ran: list[str] = []
    uow = SqlUnitOfWork(engine, dispatcher())

    async def hook() -> None:
        ran.append("hook")

    uow.after_commit(hook)
    await uow.commit()
    assert ran == ["hook"]
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_unit_ends_once(engine: AsyncEngine) -> None:
    uow = SqlUnitOfWork(engine, dispatcher())
    await write(uow)
    await uow.commit()
    with pytest.raises(RuntimeError, match="already been committed"):
        await uow.execute(text("SELECT 1"))
    with pytest.raises(RuntimeError, match="already been committed"):
        await uow.commit()


async def test_recorders_see_every_event_in_order_inside_the_transaction(
    engine: AsyncEngine,
) -> None:
    recorded: list[Sequence[DomainEvent]] = []

    async def record(connection: AsyncConnection, events: Sequence[DomainEvent]) -> None:
        assert connection.in_transaction()
        recorded.append(list(events))

    uow = SqlUnitOfWork(engine, dispatcher(), recorders=(record,))
    first, second = await write(uow), await write(uow)
    await uow.commit()
    assert [[e.user_id for e in batch] for batch in recorded] == [[first, second]]  # type: ignore[attr-defined]


async def test_command_transaction_commits_or_rolls_back(engine: AsyncEngine) -> None:
    async with command_transaction(SqlUnitOfWork(engine, dispatcher())) as uow:
        kept = uuid.uuid4()
        await uow.execute(insert_user(kept))  # type: ignore[arg-type]
    dropped = uuid.uuid4()

    async def failing_command() -> None:
        async with command_transaction(SqlUnitOfWork(engine, dispatcher())) as uow:
            await uow.execute(insert_user(dropped))  # type: ignore[arg-type]
            raise LookupError("the command failed")

    with pytest.raises(LookupError):
        await failing_command()
    assert await count(engine, users, kept) == 1
    assert await count(engine, users, dropped) == 0
