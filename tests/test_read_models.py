"""`inkwell rebuild-read-models`: the rebuild equals the incremental projection."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from src.cli import main as cli
from src.core.tables import contents_read, users_read
from tests.conftest import Backend
from tests.helpers import authed_user, publish


async def _some_history(client: httpx.AsyncClient) -> None:
    alice, bob = await authed_user(client), await authed_user(client, phone_number="+15550001111")
    first = await publish(client, alice, image="https://example.com/p.png")
    await publish(client, alice)
    await publish(client, bob)
    await client.patch(
        f"/api/v1/content/{first['id']}",
        json={"title": "Edited", "image": None},
        headers=alice["headers"],
    )
    doomed = await publish(client, bob)
    await client.delete(f"/api/v1/content/{doomed['id']}", headers=bob["headers"])


async def test_rebuild_check_finds_the_incremental_read_models_equal(
    client: httpx.AsyncClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _some_history(client)
    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    assert await asyncio.to_thread(cli, ["rebuild-read-models", "--check"]) == 0


async def test_rebuild_check_reports_drift_and_rebuild_repairs_it(
    client: httpx.AsyncClient,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _some_history(client)
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(update(users_read).values(content_count=99))
            await connection.execute(update(contents_read).values(author_name="Someone else"))
    finally:
        await engine.dispose()
    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    assert await asyncio.to_thread(cli, ["rebuild-read-models", "--check"]) == 1
    output = capsys.readouterr().out
    assert "differs in content_count" in output
    assert "differs in author_name" in output
    assert await asyncio.to_thread(cli, ["rebuild-read-models"]) == 0
    assert await asyncio.to_thread(cli, ["rebuild-read-models", "--check"]) == 0
