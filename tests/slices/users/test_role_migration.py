"""Migration 0005 maps today's accounts to the new roles, and back on downgrade."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from src.cli import alembic_config
from tests.conftest import Backend, _create_database, _drop_database

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
async def database_url(backend: Backend, tmp_path: Path) -> AsyncIterator[str]:
    if not backend.is_postgres:
        yield f"sqlite+aiosqlite:///{tmp_path / 'roles.db'}"
        return
    name = f"inkwell_roles_{uuid.uuid4().hex[:10]}"
    url = await _create_database(name)
    try:
        yield url
    finally:
        await _drop_database(name)


async def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    step = command.downgrade if down else command.upgrade
    await asyncio.to_thread(step, alembic_config(url), revision)


async def _run(engine: AsyncEngine, sql: str, **parameters: Any) -> list[Any]:
    async with engine.begin() as connection:
        result = await connection.execute(sa.text(sql), parameters)
        return list(result.all()) if result.returns_rows else []


async def test_users_become_creators_admins_stay_and_the_way_back(database_url: str) -> None:
    await _migrate(database_url, "0004")
    engine = create_async_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    try:
        for role in ("user", "admin"):
            user_id = uuid.uuid4()
            key = user_id if postgres else user_id.hex
            for table in ("users", "users_read"):
                columns = "id, name, email, display_name, role, created_at, updated_at"
                values = ":id, :name, :email, :name, :role, :now, :now"
                if table == "users":
                    columns += ", password_hash"
                    values += ", 'x'"
                await _run(
                    engine,
                    f"INSERT INTO {table} ({columns}) VALUES ({values})",  # noqa: S608 - fixed names
                    id=key,
                    name=role,
                    email=f"{role}@example.com",
                    role=role,
                    now=NOW if postgres else NOW.replace(tzinfo=None).isoformat(" "),
                )
        await _migrate(database_url, "0005")
        for table in ("users", "users_read"):
            rows = await _run(engine, f"SELECT name, role, is_active FROM {table} ORDER BY name")  # noqa: S608
            assert [(r[0], r[1], bool(r[2])) for r in rows] == [
                ("admin", "admin", True),
                ("user", "creator", True),
            ]
        # the new default is creator, and only the three roles are storable
        key = uuid.uuid4()
        await _run(
            engine,
            "INSERT INTO users (id, name, email, password_hash, display_name, created_at,"
            " updated_at) VALUES (:id, 'new', 'new@example.com', 'x', 'new', :now, :now)",
            id=key if postgres else key.hex,
            now=NOW if postgres else NOW.replace(tzinfo=None).isoformat(" "),
        )
        assert await _run(engine, "SELECT role FROM users WHERE name = 'new'") == [("creator",)]
        with pytest.raises(IntegrityError):
            await _run(engine, "UPDATE users SET role = 'user' WHERE name = 'new'")
        await _run(engine, "UPDATE users SET role = 'viewer' WHERE name = 'new'")

        await _migrate(database_url, "0004", down=True)
        rows = await _run(engine, "SELECT name, role FROM users ORDER BY name")
        assert rows == [("admin", "admin"), ("new", "user"), ("user", "user")]
        read_rows = await _run(engine, "SELECT name, role FROM users_read ORDER BY name")
        assert read_rows == [("admin", "admin"), ("user", "user")]
    finally:
        await engine.dispose()
