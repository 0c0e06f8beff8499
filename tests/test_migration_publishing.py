"""Migration 0006 on a database that already holds content: slugs, statuses and read models
are backfilled, search works at once, and a downgrade refuses to publish drafts."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from src.cli import alembic_config
from src.core.tables import UTCDateTime
from src.read_models import rebuild_read_models
from tests.conftest import Backend, running_app
from tests.test_migrations import empty_database_url  # noqa: F401 (a fixture)

_users = sa.table(
    "users",
    *(sa.column(name, sa.String) for name in ("name", "email", "password_hash", "display_name")),
    sa.column("id", sa.Uuid),
    sa.column("role", sa.String),
    sa.column("created_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)
_users_read = sa.table(
    "users_read",
    *(sa.column(name, sa.String) for name in ("name", "email", "display_name", "role")),
    sa.column("id", sa.Uuid),
    sa.column("content_count", sa.Integer),
    sa.column("created_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)
_columns_0004 = ("title", "body", "author_name", "author_display_name")
_contents = sa.table(
    "contents",
    sa.column("id", sa.Uuid),
    sa.column("author_id", sa.Uuid),
    sa.column("title", sa.String),
    sa.column("body", sa.Text),
    sa.column("status", sa.String),
    sa.column("created_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)
_contents_read = sa.table(
    "contents_read",
    *(sa.column(name, sa.String) for name in _columns_0004),
    sa.column("id", sa.Uuid),
    sa.column("author_id", sa.Uuid),
    sa.column("created_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)
TITLES = ["Same Title", "Same Title", "Crème brûlée", "Same Title 2"]


async def _run(url: str, *statements: Any) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            return [await connection.execute(statement) for statement in statements]
    finally:
        await engine.dispose()


async def _seed_0004(url: str) -> list[uuid.UUID]:
    """What revision 0004 could hold: one author and four published items."""
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    author = uuid.uuid4()
    person = {"name": "Ada", "email": "ada@example.com", "display_name": "Ada", "role": "user"}
    ids = [uuid.uuid4() for _ in TITLES]
    moments = [now + dt.timedelta(minutes=n) for n in range(len(TITLES))]
    await _run(
        url,
        sa.insert(_users).values(
            id=author, password_hash="x", created_at=now, updated_at=now, **person
        ),
        sa.insert(_users_read).values(
            id=author,
            content_count=len(TITLES),
            created_at=now,
            updated_at=now,
            **{k: v for k, v in person.items()},
        ),
        *(
            sa.insert(table).values(
                id=content_id,
                author_id=author,
                title=title,
                body=f"The story of {title.lower()}, told at length.",
                created_at=moment,
                updated_at=moment,
                **({"author_name": "Ada", "author_display_name": "Ada"} if extra else {}),
            )
            for content_id, title, moment in zip(ids, TITLES, moments, strict=True)
            for table, extra in ((_contents, False), (_contents_read, True))
        ),
    )
    return ids


async def test_existing_content_is_published_with_unique_slugs_and_searchable(
    empty_database_url: str,  # noqa: F811
    backend: Backend,
) -> None:
    url = empty_database_url
    config = alembic_config(url)
    await asyncio.to_thread(command.upgrade, config, "0004")
    ids = await _seed_0004(url)
    await asyncio.to_thread(command.upgrade, config, "0006")

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.text(
                        "SELECT slug, status, published_at = created_at AS same FROM contents "
                        "ORDER BY created_at"
                    )
                )
            ).all()
        # The rebuild is today's code: it needs today's schema (later migrations add read
        # columns and tables, and leave what 0006 made alone).
        await asyncio.to_thread(command.upgrade, config, "head")
        report = await rebuild_read_models(engine, check=True)
    finally:
        await engine.dispose()
    assert [row.slug for row in rows] == [
        "same-title",
        "same-title-2",
        "creme-brulee",
        "same-title-2-2",  # its own slug was given to the older item
    ]
    assert {(row.status, bool(row.same)) for row in rows} == {("published", True)}
    assert report.clean, report.differences  # read models (and the full-text index) backfilled

    async with running_app(Backend(backend.name, url, None)) as client:
        item = (await client.get("/api/v1/content/slug/creme-brulee")).json()
        assert (item["id"], item["status"], item["tags"]) == (str(ids[2]), "published", [])
        assert item["published_at"] == item["created_at"]
        found = (await client.get("/api/v1/content", params={"q": "story brûlée"})).json()
        assert [i["id"] for i in found["items"]] == [str(ids[2])]

    await asyncio.to_thread(command.downgrade, config, "0004")  # no drafts: reversible
    await asyncio.to_thread(command.upgrade, config, "0006")


async def test_a_downgrade_refuses_while_drafts_exist(
    empty_database_url: str,  # noqa: F811
) -> None:
    url = empty_database_url
    config = alembic_config(url)
    await asyncio.to_thread(command.upgrade, config, "0004")
    ids = await _seed_0004(url)
    await asyncio.to_thread(command.upgrade, config, "0006")
    await _run(url, sa.update(_contents).where(_contents.c.id == ids[0]).values(status="draft"))
    with pytest.raises(RuntimeError, match="1 draft"):
        await asyncio.to_thread(command.downgrade, config, "0004")
    version = await _run(url, sa.text("SELECT version_num FROM alembic_version"))
    assert version[0].scalar() == "0006"
