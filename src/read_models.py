"""Rebuilding the read models from the write tables (`inkwell rebuild-read-models`).

Each slice's projector module offers `rebuild(connection)`, which refills its read table
with one set-based statement. Rebuild truncates and refills in one transaction on the primary;
`check` does the same but compares the result with what incremental projection had produced,
reports every difference and rolls back, changing nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from src.core.tables import READ_TABLES
from src.slices.content import projector as content_projector
from src.slices.users import projector as users_projector

Snapshot = dict[Any, dict[str, Any]]
Rebuild = Callable[[AsyncConnection], Awaitable[None]]

# In dependency order: users_read first (content projections read author names from users).
REBUILDERS: tuple[Rebuild, ...] = (users_projector.rebuild, content_projector.rebuild)


@dataclass
class RebuildReport:
    differences: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not any(self.differences.values())


async def _snapshot(connection: AsyncConnection, table: Table) -> Snapshot:
    rows = (await connection.execute(select(table))).mappings().all()
    return {row["id"]: dict(row) for row in rows}


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
    async with engine.connect() as connection:
        await connection.begin()
        before = {t.name: await _snapshot(connection, t) for t in READ_TABLES} if check else {}
        for table in reversed(READ_TABLES):
            await connection.execute(delete(table))
        for rebuild in REBUILDERS:
            await rebuild(connection)
        for table in READ_TABLES:
            after = await _snapshot(connection, table)
            report.rows[table.name] = len(after)
            if check:
                report.differences[table.name] = _diff(table.name, before[table.name], after)
        if check:
            await connection.rollback()
        else:
            await connection.commit()
    return report
