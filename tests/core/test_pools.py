"""The connection pools' sizes: fixed (no overflow), and on SQLite's read engine one
connection per core, because its reads run in their connections' threads."""

from __future__ import annotations

import os
import pathlib

import pytest
from sqlalchemy.pool.base import ResetStyle

from src.core.db import engines
from src.core.db.engines import POSTGRES_POOL_SIZE, create_engine
from src.settings import Settings

SQLITE = "sqlite+aiosqlite:///{folder}/pools.db"
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1/postgres"  # never connected to here


def _affinity() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.mark.parametrize(
    ("backend", "role", "expected"),
    [
        ("sqlite", "read", None),  # one per usable core, at least 2
        ("sqlite", "write", POSTGRES_POOL_SIZE),
        ("postgres", "read", POSTGRES_POOL_SIZE),
        ("postgres", "write", POSTGRES_POOL_SIZE),
    ],
)
async def test_default_pools_are_fixed_and_sized_for_their_backend(
    backend: str, role: str, expected: int | None, tmp_path: os.PathLike[str]
) -> None:
    url = SQLITE.format(folder=tmp_path) if backend == "sqlite" else POSTGRES
    engine = create_engine(url, Settings(database_url=url), role)  # type: ignore[arg-type]
    try:
        pool = engine.sync_engine.pool
        if expected is None:
            assert 2 <= pool.size() <= max(2, _affinity())  # type: ignore[attr-defined]
        else:
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


def test_a_container_cpu_limit_bounds_the_sqlite_read_pool(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")  # 1.5 CPUs: two cores' worth, rounded up
    monkeypatch.setattr(engines, "CGROUP_CPU_MAX", cpu_max)
    monkeypatch.setattr(engines.os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    url = SQLITE.format(folder=tmp_path)

    assert engines.pool_size(Settings(database_url=url), url, "read") == 2
    cpu_max.write_text("max 100000\n")
    assert engines.pool_size(Settings(database_url=url), url, "read") == 16


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_only_the_read_pool_skips_the_rollback_at_check_in(
    backend: str, tmp_path: os.PathLike[str]
) -> None:
    # The read engine is autocommit and never opens a transaction; the write engine's
    # connections may come back from a failed command and must be rolled back.
    url = SQLITE.format(folder=tmp_path) if backend == "sqlite" else POSTGRES
    expected = {"read": ResetStyle.reset_none, "write": ResetStyle.reset_rollback}
    for role, reset in expected.items():
        engine = create_engine(url, Settings(database_url=url), role)  # type: ignore[arg-type]
        try:
            assert engine.sync_engine.pool._reset_on_return is reset  # type: ignore[attr-defined]
        finally:
            await engine.dispose()
