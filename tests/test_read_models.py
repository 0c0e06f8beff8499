"""`inkwell rebuild-read-models`: the rebuild equals the incremental projection."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import create_async_engine

from src.cli import main as cli
from src.core.tables import (
    content_tags_read,
    contents_read,
    contents_search,
    tags_read,
    users_read,
)
from tests.conftest import Backend
from tests.helpers import authed_user, publish


async def _some_history(client: httpx.AsyncClient) -> None:
    alice, bob = await authed_user(client), await authed_user(client, phone_number="+15550001111")
    first = await publish(client, alice, image="https://example.com/p.png", tags=["b", "a"])
    await publish(client, alice, tags=["a"])
    await publish(client, bob)
    await client.patch(
        f"/api/v1/content/{first['id']}",
        json={"title": "Edited", "image": None, "tags": ["c", "a"]},
        headers=alice["headers"],
    )
    doomed = await publish(client, bob, tags=["c"])
    await client.delete(f"/api/v1/content/{doomed['id']}", headers=bob["headers"])
    draft = await publish(client, bob, tags=["d"], status="draft")
    await publish(client, bob, tags=["d", "a"], status="draft")
    unpublished = await publish(client, alice, tags=["e"])
    for item, status in ((draft, "published"), (unpublished, "draft")):
        response = await client.patch(
            f"/api/v1/content/{item['id']}",
            json={"status": status, "content": "Rewritten body for the search index."},
            headers=(bob if item is draft else alice)["headers"],
        )
        assert response.status_code == 200, response.text


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


async def test_rebuild_check_covers_tags_lists_counts_and_the_search_index(
    client: httpx.AsyncClient,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _some_history(client)
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(update(contents_read).values(tags=["stale"]))
            await connection.execute(update(tags_read).values(count=tags_read.c.count + 5))
            await connection.execute(
                delete(content_tags_read).where(content_tags_read.c.tag == "a")
            )
            if backend.is_postgres:
                await connection.execute(update(contents_read).values(search=None))
            else:
                await connection.execute(update(contents_search).values(title="stale"))
    finally:
        await engine.dispose()
    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    assert await asyncio.to_thread(cli, ["rebuild-read-models", "--check"]) == 1
    output = capsys.readouterr().out
    assert (
        "differs in search, tags" in output if backend.is_postgres else "differs in tags" in output
    )
    assert "tags_read a: differs in count" in output
    assert "content_tags_read ('a', " in output
    if not backend.is_postgres:
        assert "contents_search" in output
        assert "differs in title" in output
    assert await asyncio.to_thread(cli, ["rebuild-read-models"]) == 0
    assert await asyncio.to_thread(cli, ["rebuild-read-models", "--check"]) == 0
    response = await client.get("/api/v1/content", params={"q": "rewritten"})
    assert len(response.json()["items"]) == 1  # the rebuilt index answers searches
