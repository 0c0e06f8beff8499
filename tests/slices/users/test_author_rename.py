"""A profile edit reaches every denormalized copy of the author's names, cached or not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx
import pytest

from src.cli import main as cli
from tests.conftest import Backend
from tests.helpers import authed_user, publish, publish_many

ITEMS = 1_000
T = TypeVar("T")


async def _in_batches(calls: list[Awaitable[T]], size: int = 25) -> list[T]:
    done: list[T] = []
    for start in range(0, len(calls), size):
        done += await asyncio.gather(*calls[start : start + size])
    return done


async def _get(client: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response


async def _all_pages(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = (
            await _get(
                client,
                "/api/v1/content",
                limit=100,
                **params,
                **({"cursor": cursor} if cursor else {}),
            )
        ).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_a_new_display_name_reaches_every_item_list_and_profile_at_once(
    client: httpx.AsyncClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    author = await authed_user(client, name="Ada Lovelace", display_name="Ada")
    other = await authed_user(client, name="Charles Babbage")
    foreign = await publish(client, other)
    ids = await publish_many(client, author, ITEMS)

    # Everything cached before the edit: every item, every page of two lists.
    cached = await _in_batches([_get(client, f"/api/v1/content/{i}") for i in ids])
    assert {r.json()["author"]["display_name"] for r in cached} == {"Ada"}
    again = await _get(client, f"/api/v1/content/{ids[0]}")
    assert again.headers["cache-status"] == "inkwell; hit"
    assert len(await _all_pages(client)) == ITEMS + 1
    assert len(await _all_pages(client, author_id=author["id"])) == ITEMS

    response = await client.patch(
        "/api/v1/users/me", json={"display_name": "The Countess"}, headers=author["headers"]
    )
    assert response.status_code == 200, response.text
    assert response.json()["display_name"] == "The Countess"
    assert response.json()["content_count"] == ITEMS

    expected = {"id": author["id"], "name": "Ada Lovelace", "display_name": "The Countess"}
    items = await _in_batches([_get(client, f"/api/v1/content/{i}") for i in ids])
    assert all(r.json()["author"] == expected for r in items)
    everything = await _all_pages(client)
    assert len(everything) == ITEMS + 1
    assert all(item["author"] == expected for item in everything if item["id"] != foreign["id"])
    # the other author's item is untouched
    assert next(i for i in everything if i["id"] == foreign["id"])["author"]["name"] == (
        "Charles Babbage"
    )
    by_author = await _all_pages(client, author_id=author["id"])
    assert [item["author"] for item in by_author] == [expected] * ITEMS
    profile = (await _get(client, f"/api/v1/users/{author['id']}")).json()
    assert profile["display_name"] == "The Countess"
    assert profile["content_count"] == ITEMS
    me = (await client.get("/api/v1/users/me", headers=author["headers"])).json()
    assert me["display_name"] == "The Countess"

    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    assert await asyncio.to_thread(cli, ["rebuild-read-models", "--check"]) == 0


async def test_an_edit_that_keeps_the_names_leaves_the_content_cache_alone(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    item = await publish(client, author)
    url = f"/api/v1/content/{item['id']}"
    await client.get(url)
    assert (await client.get(url)).headers["cache-status"] == "inkwell; hit"
    response = await client.patch(
        "/api/v1/users/me", json={"country": "Italy"}, headers=author["headers"]
    )
    assert response.status_code == 200
    assert (await client.get(url)).headers["cache-status"] == "inkwell; hit"


async def test_a_new_name_reaches_an_item_read_and_cached_by_someone_else(
    client: httpx.AsyncClient,
) -> None:
    """The name (not just the display name) is copied too, and a stale fill cannot win."""
    author = await authed_user(client, name="Ada Lovelace")
    item = await publish(client, author)
    url = f"/api/v1/content/{item['id']}"
    reads = [client.get(url) for _ in range(5)]
    edit = client.patch("/api/v1/users/me", json={"name": "Ada King"}, headers=author["headers"])
    answers = await asyncio.gather(*reads, edit)
    assert answers[-1].status_code == 200
    assert (await client.get(url)).json()["author"]["name"] == "Ada King"
    listed = (await client.get("/api/v1/content", params={"author_id": author["id"]})).json()
    assert listed["items"][0]["author"]["name"] == "Ada King"
