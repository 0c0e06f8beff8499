"""Every emitted event becomes an outbox row in the command's own transaction: a command that
rolls back leaves none, one that commits leaves exactly its events."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from src.core.db.uow import command_transaction
from src.core.tables import outbox, utcnow
from src.slices.users.events import PasswordChanged
from tests.helpers import authed_user, publish, sign_up


async def outbox_rows(client: httpx.AsyncClient) -> list[Any]:
    engine = client.app.state.resources.database.write_engine  # type: ignore[attr-defined]
    async with engine.connect() as connection:
        result = await connection.execute(select(outbox).order_by(outbox.c.position))
        return list(result.mappings())


async def test_a_committed_signup_leaves_exactly_its_event(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    rows = await outbox_rows(client)
    assert [row["event_type"] for row in rows] == ["UserSignedUp"]
    assert rows[0]["payload"]["user_id"] == user["id"]
    assert rows[0]["aggregate_id"] == user["id"]
    assert rows[0]["committed_at"] <= utcnow()


async def test_a_published_item_leaves_its_events_in_emission_order(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    before = len(await outbox_rows(client))
    item = await publish(client, author)
    rows = (await outbox_rows(client))[before:]
    assert [row["event_type"] for row in rows] == ["ContentCreated", "ContentPublished"]
    assert {row["aggregate_id"] for row in rows} == {item["id"]}
    assert rows[0]["position"] < rows[1]["position"]
    assert len({row["event_id"] for row in rows}) == 2


async def test_a_refused_command_leaves_no_row(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    again = await client.post(
        "/api/v1/signup",
        json={"name": "Someone", "email": user["email"], "password": "correct horse battery"},
    )
    assert again.status_code == 409
    assert [row["event_type"] for row in await outbox_rows(client)] == ["UserSignedUp"]


async def test_a_commit_that_fails_after_recording_leaves_no_row(
    client: httpx.AsyncClient,
) -> None:
    resources = client.app.state.resources  # type: ignore[attr-defined]
    uow = resources.unit_of_work()

    async def fail(connection: AsyncConnection) -> None:  # runs after the outbox insert
        raise RuntimeError("the stored answer could not be written")

    async def command() -> None:
        async with command_transaction(uow) as opened:
            opened.emit(PasswordChanged(user_id=uuid.uuid4(), changed_at=utcnow()))
            uow.before_commit(fail)

    with pytest.raises(RuntimeError):
        await command()
    assert await outbox_rows(client) == []


async def test_a_use_case_that_raises_leaves_no_row(client: httpx.AsyncClient) -> None:
    resources = client.app.state.resources  # type: ignore[attr-defined]

    async def command() -> None:
        async with command_transaction(resources.unit_of_work()) as uow:
            uow.emit(PasswordChanged(user_id=uuid.uuid4(), changed_at=utcnow()))
            raise LookupError("not found after all")

    with pytest.raises(LookupError):
        await command()
    assert await outbox_rows(client) == []


async def test_the_row_carries_the_trace_context_of_the_commit(
    client: httpx.AsyncClient,
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = await client.post(
        "/api/v1/signup",
        json={"name": "Traced", "email": f"t.{uuid.uuid4().hex[:8]}@example.com",
              "password": "correct horse battery"},
        headers={"traceparent": traceparent},
    )  # fmt: skip
    assert response.status_code == 201
    (row,) = await outbox_rows(client)
    assert row["traceparent"] is not None
    assert row["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
