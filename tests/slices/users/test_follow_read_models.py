"""`inkwell rebuild-read-models` after follows: the follow counts and the feed's copy of the
follows re-project from `follows` exactly as the projectors kept them, and drift in either is
reported by `--check` and repaired by a rebuild."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import create_async_engine

from src.cli import main as cli
from src.core.tables import follows_read, users_read
from tests.conftest import Backend
from tests.helpers import authed_user, follow, publish


async def _follow_history(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    users = [await authed_user(client) for _ in range(4)]
    a, b, c, d = users
    for reader, author in ((a, b), (a, c), (b, c), (d, c), (c, a), (d, a)):
        await follow(client, reader, author)
    await follow(client, a, b)  # repeated: no second row
    response = await client.delete(f"/api/v1/users/{c['id']}/follow", headers=d["headers"])
    assert response.status_code == 204, response.text
    await publish(client, c)
    return users


async def _check(backend: Backend, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    return await asyncio.to_thread(cli, ["rebuild-read-models", *args])


async def test_the_rebuild_equals_the_projections_after_follows(
    client: httpx.AsyncClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _follow_history(client)
    assert await _check(backend, monkeypatch, "--check") == 0


async def test_drift_in_counts_and_follow_copies_is_reported_and_repaired(
    client: httpx.AsyncClient,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, *_ = await _follow_history(client)
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(update(users_read).values(follower_count=7))
            await connection.execute(
                delete(follows_read).where(follows_read.c.follower_id == uuid.UUID(a["id"]))
            )
    finally:
        await engine.dispose()
    assert await _check(backend, monkeypatch, "--check") == 1
    output = capsys.readouterr().out
    assert "differs in follower_count" in output
    assert f"follows_read ({uuid.UUID(a['id'])!r}" in output
    assert "missing from the read model" in output
    assert await _check(backend, monkeypatch) == 0
    assert await _check(backend, monkeypatch, "--check") == 0
    profile = (await client.get(f"/api/v1/users/{a['id']}")).json()
    assert (profile["follower_count"], profile["following_count"]) == (2, 2)
    feed = await client.get("/api/v1/content/feed", headers=a["headers"])
    assert len(feed.json()["items"]) == 1
