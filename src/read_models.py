"""Rebuilding the read models from the write tables (`inkwell rebuild-read-models`).

Each slice's projector module offers `rebuild(connection)`, which refills its read tables
with set-based statements. Rebuild empties and refills every read table in one transaction on
the primary; `check` does the same but compares the result with what incremental projection
had produced, reports every difference and rolls back, changing nothing.

The read tables are those of `READ_TABLES`, plus, on SQLite, the full-text table
`contents_search`. Its entries are compared by the item they index, and `contents_read.search`
(on SQLite the rowid of that entry, a number each rebuild hands out afresh) by what it points
to rather than by its value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, Table, delete, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from src.core.tables import READ_TABLES, contents_read, contents_search
from src.slices.content import projector as content_projector
from src.slices.users import projector as users_projector

Snapshot = dict[Any, dict[str, Any]]
Rebuild = Callable[[AsyncConnection], Awaitable[None]]

# In dependency order: users_read first (content projections read author names from users).
REBUILDERS: tuple[Rebuild, ...] = (users_projector.rebuild, content_projector.rebuild)


@dataclass(frozen=True, slots=True)
class _ReadTable:
    """A read table: how to empty it, and how to read it for comparison (rows by key)."""

    table: Table
    snapshot: Select[Any]
    key: tuple[str, ...]

    @classmethod
    def of(cls, table: Table, dialect: str) -> _ReadTable:
        columns = [
            column
            for column in table.columns
            if not (dialect == "sqlite" and column is contents_read.c.search)
        ]
        return cls(table, select(*columns), tuple(column.name for column in table.primary_key))


def _sqlite_search() -> _ReadTable:
    search_rowid: Any = literal_column("contents_search.rowid")
    return _ReadTable(
        contents_search,
        select(
            contents_read.c.id.label("content_id"),
            search_rowid.label("orphan_rowid"),
            contents_search.c.title,
            contents_search.c.body,
        ).select_from(
            contents_search.outerjoin(contents_read, contents_read.c.search == search_rowid)
        ),
        ("content_id",),
    )


def _read_tables(dialect: str) -> tuple[_ReadTable, ...]:
    tables = tuple(_ReadTable.of(table, dialect) for table in READ_TABLES)
    return (*tables, _sqlite_search()) if dialect == "sqlite" else tables


@dataclass
class RebuildReport:
    differences: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not any(self.differences.values())


async def _snapshot(connection: AsyncConnection, read_table: _ReadTable) -> Snapshot:
    rows = (await connection.execute(read_table.snapshot)).mappings().all()
    out: Snapshot = {}
    for row in rows:
        values = dict(row)
        key = tuple(values[name] for name in read_table.key)
        if key == (None,):  # an index entry of no item (SQLite's full-text table)
            key = ("orphan", values["orphan_rowid"])
        values.pop("orphan_rowid", None)  # rowids differ between projection and rebuild
        out[key[0] if len(key) == 1 else key] = values
    return out


def _diff(
    name: str, before: dict[Any, dict[str, Any]], after: dict[Any, dict[str, Any]]
) -> list[str]:
    out: list[str] = []
    for key in sorted(before.keys() | after.keys(), key=str):
        old, new = before.get(key), after.get(key)
        if old is None:
            out.append(f"{name} {key}: missing from the read model")
        elif new is None:
            out.append(f"{name} {key}: in the read model but not in the write tables")
        elif old != new:
            changed = sorted(column for column in new if old.get(column) != new.get(column))
            out.append(f"{name} {key}: differs in {', '.join(changed)}")
    return out


async def rebuild_read_models(engine: AsyncEngine, *, check: bool = False) -> RebuildReport:
    report = RebuildReport()
    read_tables = _read_tables(engine.dialect.name)
    async with engine.connect() as connection:
        await connection.begin()
        before = (
            {t.table.name: await _snapshot(connection, t) for t in read_tables} if check else {}
        )
        for read_table in reversed(read_tables):
            await connection.execute(delete(read_table.table))
        for rebuild in REBUILDERS:
            await rebuild(connection)
        for read_table in read_tables:
            name = read_table.table.name
            after = await _snapshot(connection, read_table)
            report.rows[name] = len(after)
            if check:
                report.differences[name] = _diff(name, before[name], after)
        if check:
            await connection.rollback()
        else:
            await connection.commit()
    return report
