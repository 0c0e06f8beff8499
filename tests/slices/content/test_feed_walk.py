"""A feed page is read by walking the newest published items (`FEED_WALK`) when that walk
holds a full page of the followed authors' items, and per followed author when it does not.

Every test here walks four items, so a handful of items crosses the walk; the pages must be
the same whichever plan read them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers import authed_user, follow, publish

FEED = "/api/v1/content/feed"
WALK = 4


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(feed_walk=WALK) as http:
        yield http


async def _page(client: httpx.AsyncClient, reader: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = await client.get(FEED, params=params, headers=reader["headers"])
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _every_page(client: httpx.AsyncClient, reader: dict[str, Any], limit: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        body = await _page(client, reader, limit=limit, **({"cursor": cursor} if cursor else {}))
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


async def test_a_page_the_walk_fills_is_read_from_the_walk(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    await follow(client, reader, author)
    items = [(await publish(client, author))["id"] for _ in range(3)]
    recorded_spans.clear()
    body = await _page(client, reader, limit=2)
    assert [item["id"] for item in body["items"]] == items[::-1][:2]
    assert body["next_cursor"] is not None
    assert _plans(recorded_spans) == ["walk"]


async def test_a_page_the_walk_leaves_short_is_read_per_author(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    reader, author, other = [await authed_user(client) for _ in range(3)]
    await follow(client, reader, author)
    older = await publish(client, author)
    for _ in range(WALK):  # the walk sees only these
        await publish(client, other)
    recorded_spans.clear()
    body = await _page(client, reader, limit=2)
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
    recorded_spans.clear()
    assert await _every_page(client, reader, limit) == followed[::-1]
    assert set(_plans(recorded_spans)) == {"walk", "per_author"}
    async with make_client(feed_walk=0) as per_author_only:
        assert await _every_page(per_author_only, reader, limit) == followed[::-1]


async def test_a_walk_of_other_readers_follows_gives_none_of_theirs(
    client: httpx.AsyncClient,
) -> None:
    reader, snoop, author = [await authed_user(client) for _ in range(3)]
    await follow(client, reader, author)
    for _ in range(3):
        await publish(client, author)
    assert (await _page(client, reader, limit=2))["items"]
    assert await _page(client, snoop, limit=2) == {"items": [], "next_cursor": None}


async def test_no_walk_reads_every_page_per_author(
    make_client: Callable[..., Any], recorded_spans: InMemorySpanExporter
) -> None:
    async with make_client(feed_walk=0) as client:
        reader, author = await authed_user(client), await authed_user(client)
        await follow(client, reader, author)
        items = [(await publish(client, author))["id"] for _ in range(3)]
        recorded_spans.clear()
        body = await _page(client, reader, limit=2)
    assert [item["id"] for item in body["items"]] == items[::-1][:2]
    assert _plans(recorded_spans) == ["per_author"]
