"""A feed page is read by walking the newest published items (`FEED_WALK`) when that walk
holds a full page of the followed authors' items, and per followed author when it does not.

Every test here walks four items, so a handful of items crosses the walk; the pages must be
the same whichever plan read them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import event, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from src.core.tables import contents, contents_read
from tests.conftest import Backend
from tests.helpers import authed_user, follow, publish, read_feed

WALK = 4


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(feed_walk=WALK) as http:
        yield http


async def _every_page(client: httpx.AsyncClient, reader: dict[str, Any], limit: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        body = await read_feed(
            client, reader, limit=limit, **({"cursor": cursor} if cursor else {})
        )
        assert len(body["items"]) <= limit
        ids += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


def _plans(spans: InMemorySpanExporter) -> list[Any]:
    return [
        span.attributes["feed.plan"]
        for span in spans.get_finished_spans()
        if span.name == "content.feed" and span.attributes
    ]


@pytest.mark.parametrize(("walk", "plan"), [(WALK, "walk"), (0, "per_author")])
async def test_a_page_the_walk_fills_is_read_from_the_walk_unless_there_is_none(
    make_client: Callable[..., Any], recorded_spans: InMemorySpanExporter, walk: int, plan: str
) -> None:
    async with make_client(feed_walk=walk) as client:
        reader, author = await authed_user(client), await authed_user(client)
        await follow(client, reader, author)
        items = [(await publish(client, author))["id"] for _ in range(3)]
        recorded_spans.clear()
        body = await read_feed(client, reader, limit=2)
    assert [item["id"] for item in body["items"]] == items[::-1][:2]
    assert body["next_cursor"] is not None
    assert _plans(recorded_spans) == [plan]


async def test_a_page_the_walk_leaves_short_is_read_per_author(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    reader, author, other = [await authed_user(client) for _ in range(3)]
    await follow(client, reader, author)
    older = await publish(client, author)
    for _ in range(WALK):  # the walk sees only these
        await publish(client, other)
    recorded_spans.clear()
    body = await read_feed(client, reader, limit=2)
    assert [item["id"] for item in body["items"]] == [older["id"]]
    assert body["next_cursor"] is None
    assert _plans(recorded_spans) == ["per_author"]


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_pages_across_both_plans_have_no_gaps_or_repeats(
    client: httpx.AsyncClient,
    make_client: Callable[..., Any],
    recorded_spans: InMemorySpanExporter,
    limit: int,
) -> None:
    reader, ada, bob, other = [await authed_user(client) for _ in range(4)]
    await follow(client, reader, ada)
    await follow(client, reader, bob)
    followed: list[str] = []
    # dense stretches (the walk fills a page) and sparse ones (it cannot), a draft among them
    for author, count in [(ada, 2), (other, 5), (bob, 8), (other, 1), (ada, 1), (other, 3)]:
        for _ in range(count):
            item = await publish(client, author)
            if author is not other:
                followed.append(item["id"])
    await publish(client, ada, status="draft")
    # unpublished inside the dense stretch: a draft that keeps its `published_at`
    unpublished = followed.pop(5)
    response = await client.patch(
        f"/api/v1/content/{unpublished}", json={"status": "draft"}, headers=bob["headers"]
    )
    assert response.status_code == 200, response.text
    recorded_spans.clear()
    assert await _every_page(client, reader, limit) == followed[::-1]
    assert set(_plans(recorded_spans)) == {"walk", "per_author"}
    async with make_client(feed_walk=0) as per_author_only:
        assert await _every_page(per_author_only, reader, limit) == followed[::-1]


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_items_published_at_one_instant_page_by_id_across_the_walk(
    client: httpx.AsyncClient, make_client: Callable[..., Any], backend: Backend, limit: int
) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    await follow(client, reader, author)
    items = [(await publish(client, author))["id"] for _ in range(2 * WALK)]
    instant = dt.datetime.now(dt.UTC)
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.begin() as connection:
            for table in (contents, contents_read):
                await connection.execute(
                    update(table)
                    .where(table.c.id.in_([uuid.UUID(item) for item in items]))
                    .values(published_at=instant)
                )
    finally:
        await engine.dispose()
    by_id = sorted(items, key=uuid.UUID, reverse=True)
    assert await _every_page(client, reader, limit) == by_id
    async with make_client(feed_walk=0) as per_author_only:
        assert await _every_page(per_author_only, reader, limit) == by_id


async def test_a_walk_of_other_readers_follows_gives_none_of_theirs(
    client: httpx.AsyncClient,
) -> None:
    reader, snoop, author = [await authed_user(client) for _ in range(3)]
    await follow(client, reader, author)
    for _ in range(3):
        await publish(client, author)
    assert (await read_feed(client, reader, limit=2))["items"]
    assert await read_feed(client, snoop, limit=2) == {"items": [], "next_cursor": None}


async def test_sqlite_walks_the_covering_index_without_statistics(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    """The service never runs ANALYZE: the walk's plan must not depend on statistics."""
    if backend.is_postgres:
        pytest.skip("SQLite's planner")
    reader, author = await authed_user(client), await authed_user(client)
    await follow(client, reader, author)
    for _ in range(3):
        await publish(client, author)
    engine = client.app.state.resources.database.read_engine  # type: ignore[attr-defined]
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await read_feed(client, reader, limit=2)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    walks = [(sql, parameters) for sql, parameters in seen if "recent" in sql]
    assert len(walks) == 1
    sql, parameters = walks[0]
    path = make_url(backend.database_url).database
    with contextlib.closing(sqlite3.connect(str(path))) as connection:
        plan = " ".join(
            str(row[-1])
            for row in connection.execute("EXPLAIN QUERY PLAN " + sql, parameters).fetchall()
        )
    assert "COVERING INDEX ix_contents_read_status_published_at_id_author_id" in plan, plan
