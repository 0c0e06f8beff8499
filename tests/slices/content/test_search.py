"""Full-text search (`q=`): matching, relevance, paging by rank, filters, hostile input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import Backend
from tests.helpers import assert_problem, authed_user, publish


async def _search(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/api/v1/content", params=params)
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


async def _all_pages(client: httpx.AsyncClient, **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page_params = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/content", params=page_params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def test_every_word_must_match_in_the_title_or_the_body(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    await publish(client, author, title="Gardening basics", content="Tomatoes need sun and water.")
    await publish(client, author, title="Tomato sauce", content="A recipe for a quick dinner.")
    await publish(client, author, title="Unrelated", content="Nothing to see here at all.")
    assert await _search(client, q="gardening") == ["Gardening basics"]
    assert await _search(client, q="dinner recipe") == ["Tomato sauce"]
    assert await _search(client, q="GARDENING water") == ["Gardening basics"]
    assert await _search(client, q="gardening dinner") == []


async def test_postgresql_matches_inflections(client: httpx.AsyncClient, backend: Backend) -> None:
    if not backend.is_postgres:
        pytest.skip("stemming is PostgreSQL's (English configuration)")
    author = await authed_user(client)
    await publish(client, author, title="How I run", content="Every morning, before work.")
    await publish(client, author, title="Libraries", content="Many libraries were visited.")
    assert await _search(client, q="running") == ["How I run"]
    assert await _search(client, q="runs") == ["How I run"]
    assert await _search(client, q="library") == ["Libraries"]


async def test_sqlite_matches_word_prefixes(client: httpx.AsyncClient, backend: Backend) -> None:
    if backend.is_postgres:
        pytest.skip("prefix matching is SQLite's (FTS5)")
    author = await authed_user(client)
    await publish(client, author, title="Python tips", content="Comprehensions are handy.")
    await publish(client, author, title="Café culture", content="Espresso, slowly.")
    assert await _search(client, q="pyth") == ["Python tips"]
    assert await _search(client, q="comprehen tip") == ["Python tips"]
    assert await _search(client, q="cafe") == ["Café culture"]  # diacritics are folded


async def test_title_matches_rank_above_body_matches_then_newest(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    body_only_old = await publish(
        client, author, title="Notes one", content="Something about the walrus, briefly."
    )
    in_title = await publish(
        client, author, title="The walrus", content="A large marine mammal of the north."
    )
    body_only_new = await publish(
        client, author, title="Notes two", content="The walrus again, in passing."
    )
    assert await _search(client, q="walrus") == [
        in_title["title"],
        body_only_new["title"],
        body_only_old["title"],
    ]


async def test_pages_by_relevance_have_no_gaps_or_repeats_even_as_content_arrives(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    expected = []
    for n in range(7):
        title = f"Orchid {n}" if n % 3 == 0 else f"Note {n}"
        body = "orchid " * (n + 1) + "care and feeding, in some detail."
        expected.append((await publish(client, author, title=title, content=body))["id"])
    everything = await _all_pages(client, q="orchid", limit=100)
    assert sorted(everything) == sorted(expected)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": "orchid", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/content", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        # Items written between pages change the collection (and so any statistic of it),
        # never the rank of an item already in the search.
        await publish(client, author, title="Elsewhere", content="Nothing in common here.")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything


async def test_search_combines_with_author_and_tag(client: httpx.AsyncClient) -> None:
    alice, bob = await authed_user(client), await authed_user(client)
    mine = await publish(client, alice, title="Kayak trips", tags=["outdoors"])
    await publish(client, alice, title="Kayak repair", tags=["workshop"])
    await publish(client, bob, title="Kayak trips too", tags=["outdoors"])
    found = await client.get(
        "/api/v1/content", params={"q": "kayak", "tag": "outdoors", "author_id": alice["id"]}
    )
    assert [item["id"] for item in found.json()["items"]] == [mine["id"]]
    assert len(await _search(client, q="kayak", tag="outdoors")) == 2
    assert len(await _search(client, q="kayak", author_id=alice["id"])) == 2


async def test_search_follows_edits_and_deletes(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    content = await publish(client, author, title="Original heading", content="Plain body text.")
    url = f"/api/v1/content/{content['id']}"
    assert await _search(client, q="original") == ["Original heading"]
    await client.patch(
        url, json={"title": "Renamed heading", "content": "Fresh words."}, headers=author["headers"]
    )
    assert await _search(client, q="original") == []
    assert await _search(client, q="renamed fresh") == ["Renamed heading"]
    await client.delete(url, headers=author["headers"])
    assert await _search(client, q="renamed") == []


async def test_searches_are_cached_and_see_new_content_at_once(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    await publish(client, author, title="Lighthouse keeper")
    first = await client.get("/api/v1/content", params={"q": "lighthouse"})
    second = await client.get("/api/v1/content", params={"q": "lighthouse"})
    assert first.headers["cache-status"] == "inkwell; fwd=miss"
    assert second.headers["cache-status"] == "inkwell; hit"
    other = await client.get("/api/v1/content", params={"q": "keeper"})
    assert other.headers["cache-status"] == "inkwell; fwd=miss"  # its own key
    await publish(client, author, title="Lighthouse history")
    assert len(await _search(client, q="lighthouse")) == 2


async def test_a_search_with_no_words_finds_nothing(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    await publish(client, author)
    assert await _search(client, q="%%%") == []
    assert len(await _search(client)) == 1  # and is not the unfiltered list's cache entry


async def test_a_cursor_of_one_order_is_refused_by_the_other(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    for _ in range(3):
        await publish(client, author, title="Paging test")
    newest = (await client.get("/api/v1/content", params={"limit": 1})).json()["next_cursor"]
    ranked = (await client.get("/api/v1/content", params={"limit": 1, "q": "paging"})).json()
    for params in (
        {"q": "paging", "cursor": newest},
        {"cursor": ranked["next_cursor"]},
    ):
        problem = assert_problem(
            await client.get("/api/v1/content", params=params), 422, "validation_error"
        )
        assert problem["errors"][0]["parameter"] == "cursor"


HOSTILE = [
    '"',
    '"unbalanced',
    "'",
    "a OR b",
    "a AND NOT b",
    "NEAR(a b, 2)",
    "NEAR",
    "title:secret",
    "{title body}: x",
    "(((",
    "a)",
    "*",
    "a*",
    "^start",
    "-minus",
    "%",
    "_",
    "100%_sure",
    "\\",
    "a & b | !c <-> d:*",
    "'; DROP TABLE contents_read; --",
    "the and of",  # stop words only
    "😀 emoji",
    "x" * 200,
    "word " * 40,
]


@pytest.mark.parametrize("q", HOSTILE)
async def test_hostile_searches_answer_200(client: httpx.AsyncClient, q: str) -> None:
    author = await authed_user(client)
    await publish(client, author, title="A title about a", content="Contents with b and c.")
    response = await client.get("/api/v1/content", params={"q": q})
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["items"], list)


@pytest.mark.parametrize("q", ["x" * 201, "a" * 1000, "nul\u0000byte", "", "bidi\u202e"])
async def test_unusable_searches_are_422(client: httpx.AsyncClient, q: str) -> None:
    response = await client.get("/api/v1/content", params={"q": q})
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["parameter"] == "q"


async def test_words_match_whatever_their_case(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    await publish(client, author, title="Die Straße am Fluss", content="Eine Geschichte über Wege.")
    assert await _search(client, q="Straße") == ["Die Straße am Fluss"]
    assert await _search(client, q="straße FLUSS") == ["Die Straße am Fluss"]


async def test_sqlite_search_survives_a_rebuild_of_contents_read(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    """A migration in batch mode rebuilds `contents_read` (copy, drop, rename), which
    renumbers its implicit rowids; the full-text entries are referenced by a stored column,
    so search still finds the right items afterwards."""
    if backend.is_postgres:
        pytest.skip("SQLite's full-text table")
    author = await authed_user(client)
    doomed = await publish(client, author, title="Alpha walrus")
    await publish(client, author, title="Beta narwhal")
    await publish(client, author, title="Gamma walrus")
    await client.delete(f"/api/v1/content/{doomed['id']}", headers=author["headers"])

    def rebuild_table(connection: Any) -> None:
        operations = Operations(MigrationContext.configure(connection))
        with operations.batch_alter_table("contents_read", recreate="always"):
            pass

    engine = create_async_engine(backend.database_url)
    try:
        async with engine.begin() as connection:
            rowids = text("SELECT rowid FROM contents_read ORDER BY rowid")
            before = (await connection.execute(rowids)).all()
            await connection.run_sync(rebuild_table)
            after = (await connection.execute(rowids)).all()
    finally:
        await engine.dispose()
    assert before != after  # the rows were renumbered
    assert await _search(client, q="walrus") == ["Gamma walrus"]
    assert await _search(client, q="narwhal") == ["Beta narwhal"]
