"""Content queries: read model, pagination, and the cache in front of them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import event

from tests.helpers import assert_problem, authed_user, publish


async def test_get_is_a_miss_then_a_hit(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    content = await publish(client, author)
    url = f"/api/v1/content/{content['id']}"
    first, second = await client.get(url), await client.get(url)
    assert first.headers["cache-status"] == "inkwell; fwd=miss"
    assert second.headers["cache-status"] == "inkwell; hit"
    assert first.content == second.content
    assert second.headers["content-type"] == "application/json"
    metrics = (await client.get("/metrics")).text
    assert 'cache_requests_total{cache="content",result="hit"} 1.0' in metrics
    assert 'cache_requests_total{cache="content",result="miss"} 1.0' in metrics


async def test_unknown_content_is_404_and_not_cached(client: httpx.AsyncClient) -> None:
    url = f"/api/v1/content/{uuid.uuid4()}"
    for _ in range(2):
        assert_problem(await client.get(url), 404, "content_not_found")


async def test_list_is_newest_first_with_keyset_pagination(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    created = [(await publish(client, author))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/content", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))


async def test_list_filters_by_author(client: httpx.AsyncClient) -> None:
    alice, bob = await authed_user(client), await authed_user(client)
    mine = await publish(client, alice)
    await publish(client, bob)
    page = (await client.get("/api/v1/content", params={"author_id": alice["id"]})).json()
    assert [item["id"] for item in page["items"]] == [mine["id"]]
    assert page["items"][0]["author"]["id"] == alice["id"]


async def test_list_refuses_a_garbled_cursor(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/content", params={"cursor": "eyJub3QiOiJ5b3VycyJ9.AAAA"})
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["parameter"] == "cursor"


async def test_new_content_appears_in_a_cached_list_at_once(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    await publish(client, author)
    assert len((await client.get("/api/v1/content")).json()["items"]) == 1
    assert (await client.get("/api/v1/content")).headers["cache-status"] == "inkwell; hit"
    await publish(client, author)
    response = await client.get("/api/v1/content")
    assert response.headers["cache-status"] == "inkwell; fwd=miss"
    assert len(response.json()["items"]) == 2


async def test_concurrent_misses_reach_the_database_once(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    content = await publish(client, author)
    engine = client.app.state.resources.database.read_engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "contents_read" in statement:
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        responses = await asyncio.gather(
            *(client.get(f"/api/v1/content/{content['id']}") for _ in range(25))
        )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert len(statements) == 1


async def test_no_read_after_a_write_returns_the_old_value(client: httpx.AsyncClient) -> None:
    """Readers hammer the item and the list while the author edits; every read that starts
    after an edit's response must show that edit or a later one."""
    author = await authed_user(client)
    content = await publish(client, author, title="v0000")
    url = f"/api/v1/content/{content['id']}"
    committed = 0
    done = False
    stale: list[str] = []

    def version(title: str) -> int:
        return int(title.removeprefix("v"))

    async def writer() -> None:
        nonlocal committed, done
        for i in range(1, 31):
            response = await client.patch(
                url, json={"title": f"v{i:04d}"}, headers=author["headers"]
            )
            assert response.status_code == 200
            committed = i
        done = True

    async def reader(list_view: bool) -> None:
        while not done:
            floor = committed
            if list_view:
                items = (await client.get("/api/v1/content")).json()["items"]
                seen = version(items[0]["title"])
            else:
                seen = version((await client.get(url)).json()["title"])
            if seen < floor:
                stale.append(f"{'list' if list_view else 'item'}: saw v{seen} after v{floor}")
            # A cache hit on the in-process backend never suspends (no I/O, no thread hop), so
            # without this the readers would keep the writer from ever running; a real client
            # always waits on its socket here.
            await asyncio.sleep(0)

    await asyncio.gather(writer(), *(reader(i % 2 == 0) for i in range(8)))
    assert stale == []
    assert committed == 30
