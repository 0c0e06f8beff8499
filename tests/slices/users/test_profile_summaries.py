"""The profile's newest summaries (stored rendered in `users_read`) follow every change to
its author's published items, on the very next read."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.helpers import authed_user, publish, publish_many


async def _summaries(client: httpx.AsyncClient, author: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/users/{author['id']}")
    assert response.status_code == 200, response.text
    contents: list[dict[str, Any]] = response.json()["contents"]
    return contents


async def test_a_title_edit_of_a_published_item_shows_at_once(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    item = await publish(client, author)
    edited = await client.patch(
        f"/api/v1/content/{item['id']}", json={"title": "A better title"}, headers=author["headers"]
    )
    assert edited.status_code == 200
    assert await _summaries(client, author) == [
        {
            "id": item["id"],
            "slug": item["slug"],
            "title": "A better title",
            "created_at": item["created_at"],
        }
    ]


async def test_an_unpublished_or_deleted_item_leaves_and_the_next_oldest_comes_back(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    created = await publish_many(client, author, 22)  # oldest first
    newest = created[-1]
    second = created[-2]
    unpublished = await client.patch(
        f"/api/v1/content/{newest}", json={"status": "draft"}, headers=author["headers"]
    )
    assert unpublished.status_code == 200
    assert [s["id"] for s in await _summaries(client, author)] == created[::-1][1:21]
    deleted = await client.delete(f"/api/v1/content/{second}", headers=author["headers"])
    assert deleted.status_code == 204
    assert [s["id"] for s in await _summaries(client, author)] == created[::-1][2:22]
    republished = await client.patch(
        f"/api/v1/content/{newest}", json={"status": "published"}, headers=author["headers"]
    )
    assert republished.status_code == 200
    assert [s["id"] for s in await _summaries(client, author)] == [newest, *created[::-1][2:21]]


async def test_a_draft_and_its_edits_never_show(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    shown = await publish(client, author)
    draft = await publish(client, author, status="draft")
    await client.patch(
        f"/api/v1/content/{draft['id']}", json={"title": "Still a draft"}, headers=author["headers"]
    )
    assert [s["id"] for s in await _summaries(client, author)] == [shown["id"]]


async def test_another_authors_items_never_show(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    other = await authed_user(client)
    await publish(client, other)
    assert await _summaries(client, author) == []


async def test_concurrent_publishes_of_one_author_all_show(client: httpx.AsyncClient) -> None:
    """Each publish rewrites the author's summaries; none may write a list without the
    others' items (the rebuild check after the test compares them too)."""
    author = await authed_user(client)
    created = await asyncio.gather(*(publish(client, author) for _ in range(8)))
    shown = {s["id"] for s in await _summaries(client, author)}
    assert shown == {item["id"] for item in created}
