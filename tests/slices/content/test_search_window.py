"""A search ranks only its newest matches (`SEARCH_RANK_WINDOW`); older matches follow.

Every test here runs with a window of three, so a handful of items crosses it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import create_async_engine

from src.core.tables import contents
from src.read_models import rebuild_read_models
from tests.conftest import Backend
from tests.helpers import assert_problem, authed_user, publish

WINDOW = 3


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(search_rank_window=WINDOW) as http:
        yield http


async def _pages(client: httpx.AsyncClient, between: Any = None, **params: Any) -> list[str]:
    """The titles of every page of a search, in order; `between()` runs after each page."""
    titles: list[str] = []
    cursor = None
    while True:
        response = await client.get(
            "/api/v1/content", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        titles += [item["title"] for item in page["items"]]
        if between is not None:
            await between()
        cursor = page["next_cursor"]
        if cursor is None:
            return titles


async def _heron_items(client: httpx.AsyncClient, author: dict[str, Any]) -> None:
    """Six matches of `heron`, oldest first. The title holds the word in A, C and D: of the
    window (D, E, F) only in its oldest, D, which ranking must lift above E and F."""
    for name in "ABCDEF":
        title = f"{name} heron" if name in "ACD" else f"{name} note"
        await publish(client, author, title=title, content=f"{name}: a heron by the river.")


async def test_the_newest_matches_are_ranked_and_the_older_follow_newest_first(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    await _heron_items(client, author)
    # Ranked over every match this would be D, C, A (title), then F, E, B; newest first
    # throughout, F, E, D, C, B, A.
    expected = ["D heron", "F note", "E note", "C heron", "B note", "A heron"]
    assert await _pages(client, q="heron", limit=20) == expected


@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_pages_cross_the_window_without_gaps_or_repeats_as_content_arrives(
    client: httpx.AsyncClient, limit: int
) -> None:
    author = await authed_user(client)
    await _heron_items(client, author)
    arrivals = iter(range(100))

    async def publish_a_better_match() -> None:
        # Newer than the window's start, and ranked above every page already read.
        n = next(arrivals)
        await publish(client, author, title=f"Late heron {n}", content="Heron, heron, heron.")

    titles = await _pages(client, between=publish_a_better_match, q="heron", limit=limit)
    assert titles == ["D heron", "F note", "E note", "C heron", "B note", "A heron"]


async def test_the_window_stays_where_the_first_page_put_it(client: httpx.AsyncClient) -> None:
    """Deleting the window's oldest match after the first page moves nothing into it."""
    author = await authed_user(client)
    await _heron_items(client, author)
    first = (await client.get("/api/v1/content", params={"q": "heron", "limit": 2})).json()
    assert [item["title"] for item in first["items"]] == ["D heron", "F note"]
    oldest_in_window = first["items"][0]
    deleted = await client.delete(
        f"/api/v1/content/{oldest_in_window['id']}", headers=author["headers"]
    )
    assert deleted.status_code == 204
    rest = await client.get(
        "/api/v1/content", params={"q": "heron", "limit": 20, "cursor": first["next_cursor"]}
    )
    # Recomputed, the window would now hold C, rank it above F (the cursor) and so skip it.
    titles = [item["title"] for item in rest.json()["items"]]
    assert titles == ["E note", "C heron", "B note", "A heron"]


async def test_filters_that_keep_nothing_of_the_window_page_the_older_matches(
    client: httpx.AsyncClient,
) -> None:
    alice, bob = await authed_user(client), await authed_user(client)
    await publish(client, alice, title="Alice heron", content="A heron, seen.", tags=["birds"])
    await publish(client, alice, title="Alice note", content="A heron, wading.", tags=["birds"])
    await publish(client, alice, title="Alice heron again", content="A heron, seen.")
    for n in range(WINDOW):  # the window: Bob's, all of it
        await publish(client, bob, title=f"Bob heron {n}", content="A heron, seen.")
    alices = await _pages(client, q="heron", author_id=alice["id"], limit=1)
    assert alices == ["Alice heron again", "Alice note", "Alice heron"]
    assert await _pages(client, q="heron", tag="birds", limit=1) == ["Alice note", "Alice heron"]


async def test_a_search_cursor_is_refused_by_the_newest_first_list_and_back(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    await _heron_items(client, author)
    in_window = (await client.get("/api/v1/content", params={"q": "heron", "limit": 1})).json()
    older = (await client.get("/api/v1/content", params={"q": "heron", "limit": 4})).json()
    newest = (await client.get("/api/v1/content", params={"limit": 1})).json()
    for params in (
        {"cursor": in_window["next_cursor"]},
        {"cursor": older["next_cursor"]},
        {"q": "heron", "cursor": newest["next_cursor"]},
    ):
        problem = assert_problem(
            await client.get("/api/v1/content", params=params), 422, "validation_error"
        )
        assert problem["errors"][0]["parameter"] == "cursor"


async def test_a_rebuild_numbers_sqlite_entries_in_the_order_items_were_created(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    """After `rebuild-read-models`, the older matches still come newest first: the rebuild
    numbers the full-text entries by creation time, not by the order rows are stored in."""
    if backend.is_postgres:
        pytest.skip("SQLite's full-text entries")
    author = await authed_user(client)
    for name in ("A", "B", "C", "D", "E"):
        await publish(client, author, title=f"{name} ibis", content="An ibis, seen.")
    listed = (await client.get("/api/v1/content", params={"q": "ibis", "limit": 20})).json()
    first_stored = next(item for item in listed["items"] if item["title"] == "A ibis")
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.begin() as connection:  # A, stored first, was created last
            await connection.execute(
                update(contents)
                .where(contents.c.id == uuid.UUID(first_stored["id"]))
                .values(created_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
            )
        await rebuild_read_models(engine)
        async with engine.connect() as connection:
            entries = await connection.execute(
                text("SELECT title FROM contents_read ORDER BY search")
            )
            assert [row.title for row in entries] == [
                "B ibis",
                "C ibis",
                "D ibis",
                "E ibis",
                "A ibis",
            ]
    finally:
        await engine.dispose()
    # limit=10: not the cached page from before the rebuild, which the rebuild did not touch
    assert await _pages(client, q="ibis", limit=10) == [
        "A ibis",
        "E ibis",
        "D ibis",
        "C ibis",
        "B ibis",
    ]
