"""Stairway test: every revision upgrades, downgrades and upgrades again, on both databases."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from src.cli import alembic_config, migrate
from src.core.tables import CONTENTS_SEARCH_DDL, exists_on, metadata, sqlite_search_tables
from tests.conftest import Backend, _create_database, _drop_database


@pytest.fixture
async def empty_database_url(backend: Backend, tmp_path: Path) -> AsyncIterator[str]:
    if not backend.is_postgres:
        yield f"sqlite+aiosqlite:///{tmp_path / 'stairway.db'}"
        return
    name = f"inkwell_stairway_{uuid.uuid4().hex[:10]}"
    url = await _create_database(name)
    try:
        yield url
    finally:
        await _drop_database(name)


def _revisions(url: str) -> list[tuple[str, str]]:
    script = ScriptDirectory.from_config(alembic_config(url))
    ordered = list(reversed(list(script.walk_revisions())))
    return [(r.revision, r.down_revision or "base") for r in ordered]  # type: ignore[misc]


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    return set(names) - {"alembic_version"}


def _expected_tables(url: str) -> set[str]:
    """The metadata's tables, plus SQLite's full-text tables (an FTS5 virtual table and its
    shadow tables, which SQLAlchemy metadata cannot declare) on SQLite."""
    return set(metadata.tables) | (sqlite_search_tables() if url.startswith("sqlite") else set())


async def test_stairway_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    revisions = _revisions(empty_database_url)
    assert revisions, "no migrations found"
    for revision, previous in revisions:
        await asyncio.to_thread(command.upgrade, config, revision)
        await asyncio.to_thread(command.downgrade, config, previous)
        await asyncio.to_thread(command.upgrade, config, revision)
    assert await _tables(empty_database_url) == _expected_tables(empty_database_url)
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await _tables(empty_database_url) == set()


async def test_migrations_match_the_table_definitions(empty_database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "head")
    engine = create_async_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync,
                        opts={
                            # Only what one backend has (SQLite's FTS5 tables, PostgreSQL's
                            # GIN index) is left out where it does not belong; all else is
                            # compared.
                            "include_object": lambda item, name, type_, *_: exists_on(
                                item, name, type_, sync.dialect.name
                            )
                        },
                    ),
                    metadata,
                )
            )
    finally:
        await engine.dispose()
    assert differences == []


def test_a_migrated_sqlite_database_is_left_in_wal_mode(tmp_path: Path) -> None:
    """The service's connections then never have to switch the file into WAL themselves, which
    fails at once ("database is locked") when two of them open together on a new database."""
    path = tmp_path / "fresh.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _fts5_arguments(sql: str) -> str:
    return sql[sql.index("USING") :]


def test_the_search_prefix_indexes_keep_every_entry_and_its_number(tmp_path: Path) -> None:
    """Revision 0015 rebuilds SQLite's full-text table with prefix indexes: each entry keeps
    its rowid (what `contents_read.search` and search cursors hold), prefixes still match,
    and the table is then as `CONTENTS_SEARCH_DDL` declares; the downgrade undoes it."""
    path = tmp_path / "prefixes.db"
    url = f"sqlite+aiosqlite:///{path}"
    config = alembic_config(url)
    command.upgrade(config, "0014")

    def entries() -> tuple[str, list[tuple[int, str]]]:
        with contextlib.closing(sqlite3.connect(path)) as connection:
            sql = connection.execute(
                "SELECT sql FROM sqlite_master WHERE name = 'contents_search'"
            ).fetchone()[0]
            found = connection.execute(
                "SELECT rowid, title FROM contents_search "
                "WHERE contents_search MATCH '\"pyth\"*' ORDER BY rowid"
            ).fetchall()
        return sql, found

    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.executemany(
            "INSERT INTO contents_search (rowid, title, body) VALUES (?, ?, ?)",
            [(7, "Python tips", "x"), (42, "Other", "pythonic code"), (99, "Rust", "no")],
        )
        connection.commit()
    before_sql, before = entries()
    assert "prefix" not in before_sql
    assert before == [(7, "Python tips"), (42, "Other")]

    command.upgrade(config, "0015")
    after_sql, after = entries()
    assert after == before
    assert _fts5_arguments(after_sql) == _fts5_arguments(CONTENTS_SEARCH_DDL)

    command.downgrade(config, "0014")
    downgraded_sql, downgraded = entries()
    assert downgraded == before
    assert _fts5_arguments(downgraded_sql) == _fts5_arguments(before_sql)
