"""`inkwell rebuild-read-models` after every kind of account change: the incremental
projections equal the rebuild, and drift in the new columns is reported and repaired."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from src.cli import main as cli
from src.core.tables import contents_read, users_read
from tests.conftest import Backend
from tests.helpers import admin_user, authed_user, publish


async def _account_history(client: httpx.AsyncClient) -> None:
    admin = await admin_user(client)
    author = await authed_user(client, phone_number="+2348000000021")
    other = await authed_user(client)
    for _ in range(3):
        await publish(client, author)
    await publish(client, other)
    edits = [
        {"name": "Renamed Author", "display_name": None, "country": "Kenya"},
        {"phone_number": None, "state": "Nairobi"},
    ]
    for body in edits:
        response = await client.patch("/api/v1/users/me", json=body, headers=author["headers"])
        assert response.status_code == 200, response.text
    for body in ({"role": "viewer"}, {"is_active": False}, {"is_active": True}):
        response = await client.patch(
            f"/api/v1/admin/users/{other['id']}", json=body, headers=admin["headers"]
        )
        assert response.status_code == 200, response.text
    changed = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": author["password"], "new_password": "another good one"},
        headers=author["headers"],
    )
    assert changed.status_code == 204


async def test_the_rebuild_equals_the_projections_after_account_changes(
    client: httpx.AsyncClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _account_history(client)
    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    assert await asyncio.to_thread(cli, ["rebuild-read-models", "--check"]) == 0


async def test_drift_in_account_state_and_author_names_is_reported_and_repaired(
    client: httpx.AsyncClient,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _account_history(client)
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(update(users_read).values(is_active=False, role="admin"))
            await connection.execute(update(contents_read).values(author_display_name="Stale"))
    finally:
        await engine.dispose()
    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    assert await asyncio.to_thread(cli, ["rebuild-read-models", "--check"]) == 1
    output = capsys.readouterr().out
    assert "differs in is_active, role" in output
    assert "differs in author_display_name" in output
    assert await asyncio.to_thread(cli, ["rebuild-read-models"]) == 0
    assert await asyncio.to_thread(cli, ["rebuild-read-models", "--check"]) == 0
