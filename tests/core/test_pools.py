"""The connection pools' sizes: fixed (no overflow), and on SQLite's read engine one
connection per core, because its reads run in their connections' threads."""

from __future__ import annotations

import os

import pytest

from src.core.db.engines import POSTGRES_POOL_SIZE, create_engine
from src.settings import Settings

SQLITE = "sqlite+aiosqlite:///{folder}/pools.db"
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1/postgres"  # never connected to here


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.mark.parametrize(
    ("backend", "role", "expected"),
    [
        ("sqlite", "read", max(2, _cores())),
        ("sqlite", "write", POSTGRES_POOL_SIZE),
        ("postgres", "read", POSTGRES_POOL_SIZE),
        ("postgres", "write", POSTGRES_POOL_SIZE),
    ],
)
async def test_default_pools_are_fixed_and_sized_for_their_backend(
    backend: str, role: str, expected: int, tmp_path: os.PathLike[str]
) -> None:
    url = SQLITE.format(folder=tmp_path) if backend == "sqlite" else POSTGRES
    engine = create_engine(url, Settings(database_url=url), role)  # type: ignore[arg-type]
    try:
        pool = engine.sync_engine.pool
        assert pool.size() == expected  # type: ignore[attr-defined]
        assert pool._max_overflow == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_db_pool_size_sizes_every_pool(tmp_path: os.PathLike[str]) -> None:
    url = SQLITE.format(folder=tmp_path)
    for role in ("read", "write"):
        engine = create_engine(url, Settings(database_url=url, db_pool_size=7), role)  # type: ignore[arg-type]
        try:
            assert engine.sync_engine.pool.size() == 7  # type: ignore[attr-defined]
        finally:
            await engine.dispose()
