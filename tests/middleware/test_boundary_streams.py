"""The command boundary and a streamed answer: the unit of work ends before the first byte,
the stream passes through as it comes, and a stream is never stored under a key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends
from fastapi.responses import StreamingResponse
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from src.core.db.uow import UnitOfWork
from src.core.resources import unit_of_work
from src.core.tables import conversations, idempotency_records, utcnow
from tests.conftest import Backend
from tests.helpers import authed_user

PATH = "/api/v1/test-only/stream"


async def _count(backend: Backend, table: Any) -> int:
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.connect() as connection:
            return int(
                (await connection.execute(select(func.count()).select_from(table))).scalar_one()
            )
    finally:
        await engine.dispose()


def _add_streaming_route(client: httpx.AsyncClient, backend: Backend, owner_id: str) -> None:
    """A command that writes a row, then streams what another connection sees of it."""

    async def endpoint(uow: UnitOfWork = Depends(unit_of_work)) -> StreamingResponse:
        now = utcnow()
        await uow.execute(
            insert(conversations).values(
                id=uuid.uuid4(),
                owner_id=uuid.UUID(owner_id),
                title="written before the stream",
                message_count=0,
                created_at=now,
                updated_at=now,
            )
        )

        async def events() -> AsyncIterator[bytes]:
            seen = await _count(backend, conversations)
            yield f"event: seen\ndata: {seen}\n\n".encode()
            yield b"event: end\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    client.app.add_api_route(PATH, endpoint, methods=["POST"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
async def test_a_stream_commits_the_commands_writes_before_its_first_byte(
    client: httpx.AsyncClient, backend: Backend, keyed: bool
) -> None:
    user = await authed_user(client)
    _add_streaming_route(client, backend, user["id"])
    headers = {**user["headers"], **({"Idempotency-Key": str(uuid.uuid4())} if keyed else {})}
    response = await client.post(PATH, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    # the stream's code, on another connection, already saw the committed row
    assert response.text == "event: seen\ndata: 1\n\nevent: end\ndata: {}\n\n"
    assert await _count(backend, conversations) == 1
    # a stream is never stored under a key: the key is released, a retry runs again
    assert await _count(backend, idempotency_records) == 0
    again = await client.post(PATH, headers=headers)
    assert "idempotent-replayed" not in again.headers
    assert await _count(backend, conversations) == 2
