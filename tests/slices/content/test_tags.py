"""Tags: normalized on the way in, stored alphabetically, counted for published items only."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, authed_user, content_body, publish


async def _tag_counts(client: httpx.AsyncClient, **params: Any) -> list[tuple[str, int]]:
    response = await client.get("/api/v1/tags", params=params)
    assert response.status_code == 200, response.text
    return [(tag["name"], tag["count"]) for tag in response.json()["items"]]


async def test_tags_are_normalized_merged_and_sorted(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    content = await publish(
        client,
        author,
        tags=[" Machine  Learning ", "PYTHON", "python", "Café", "web-dev", "x\ty"],
    )
    assert content["tags"] == ["café", "machine-learning", "python", "web-dev", "x-y"]
    assert (await client.get(f"/api/v1/content/{content['id']}")).json()["tags"] == content["tags"]


async def test_tags_are_optional(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    assert (await publish(client, author))["tags"] == []


@pytest.mark.parametrize(
    ("tags", "pointer"),
    [
        (["ok", "under_score"], "/tags/1"),
        (["x" * 31], "/tags/0"),
        ([""], "/tags/0"),
        (["   "], "/tags/0"),
        (["c++"], "/tags/0"),
        (["a/b"], "/tags/0"),
        (["\u0000"], "/tags/0"),
        ([f"tag{n}" for n in range(11)], "/tags"),
        ("python", "/tags"),
        ([1], "/tags/0"),
        (None, "/tags"),
    ],
)
async def test_invalid_tags_are_422(client: httpx.AsyncClient, tags: Any, pointer: str) -> None:
    author = await authed_user(client)
    response = await client.post(
        "/api/v1/content", json=content_body(tags=tags), headers=author["headers"]
    )
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["pointer"] == pointer


async def test_ten_tags_are_accepted_and_a_patch_replaces_them(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    content = await publish(client, author, tags=[f"t{n}" for n in range(10)])
    assert len(content["tags"]) == 10
    url = f"/api/v1/content/{content['id']}"
    replaced = await client.patch(url, json={"tags": ["new", "T1"]}, headers=author["headers"])
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["tags"] == ["new", "t1"]
    cleared = await client.patch(url, json={"tags": []}, headers=author["headers"])
    assert cleared.json()["tags"] == []
    assert (await client.get(url)).json()["tags"] == []
    assert_problem(
        await client.patch(url, json={"tags": None}, headers=author["headers"]),
        422,
        "validation_error",
    )


async def test_tag_counts_are_most_used_first_then_by_name(client: httpx.AsyncClient) -> None:
    alice, bob = await authed_user(client), await authed_user(client)
    await publish(client, alice, tags=["python", "web"])
    await publish(client, bob, tags=["python", "async"])
    await publish(client, bob, tags=["python", "web", "zebra"])
    assert await _tag_counts(client) == [
        ("python", 3),
        ("web", 2),
        ("async", 1),
        ("zebra", 1),
    ]
    assert await _tag_counts(client, limit=2) == [("python", 3), ("web", 2)]


async def test_tag_counts_follow_publish_unpublish_edit_and_delete(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    headers = author["headers"]
    first = await publish(client, author, tags=["python", "web"])
    draft = await publish(client, author, tags=["python", "secret"], status="draft")
    assert await _tag_counts(client) == [("python", 1), ("web", 1)]  # drafts do not count

    await client.patch(
        f"/api/v1/content/{draft['id']}", json={"status": "published"}, headers=headers
    )
    assert await _tag_counts(client) == [("python", 2), ("secret", 1), ("web", 1)]

    await client.patch(
        f"/api/v1/content/{first['id']}", json={"tags": ["web", "new"]}, headers=headers
    )
    assert await _tag_counts(client) == [("new", 1), ("python", 1), ("secret", 1), ("web", 1)]

    await client.patch(f"/api/v1/content/{draft['id']}", json={"status": "draft"}, headers=headers)
    assert await _tag_counts(client) == [("new", 1), ("web", 1)]

    # A draft's tag edit changes no public count.
    await client.patch(f"/api/v1/content/{draft['id']}", json={"tags": ["web"]}, headers=headers)
    assert await _tag_counts(client) == [("new", 1), ("web", 1)]

    await client.delete(f"/api/v1/content/{first['id']}", headers=headers)
    assert await _tag_counts(client) == []


async def test_tag_counts_are_cached_and_every_write_reaches_them(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    await publish(client, author, tags=["cached"])
    first, second = await client.get("/api/v1/tags"), await client.get("/api/v1/tags")
    assert first.headers["cache-status"] == "inkwell; fwd=miss"
    assert second.headers["cache-status"] == "inkwell; hit"
    await publish(client, author, tags=["cached"])
    assert await _tag_counts(client) == [("cached", 2)]


@pytest.mark.parametrize("limit", [0, 101, "x"])
async def test_tag_counts_refuse_a_bad_limit(client: httpx.AsyncClient, limit: Any) -> None:
    response = await client.get("/api/v1/tags", params={"limit": limit})
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["parameter"] == "limit"


async def test_the_list_filters_by_one_normalized_tag(client: httpx.AsyncClient) -> None:
    alice, bob = await authed_user(client), await authed_user(client)
    tagged = [await publish(client, alice, tags=["machine-learning"]) for _ in range(3)]
    by_bob = await publish(client, bob, tags=["machine-learning", "other"])
    await publish(client, alice, tags=["other"])
    await publish(client, alice, tags=["machine-learning"], status="draft")

    page = (await client.get("/api/v1/content", params={"tag": " Machine Learning"})).json()
    expected = [by_bob["id"], *reversed([item["id"] for item in tagged])]
    assert [item["id"] for item in page["items"]] == expected

    mine = await client.get(
        "/api/v1/content", params={"tag": "machine-learning", "author_id": alice["id"]}
    )
    assert [item["id"] for item in mine.json()["items"]] == expected[1:]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"tag": "machine-learning", "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/content", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


async def test_a_tag_edit_moves_the_item_between_tag_lists(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    content = await publish(client, author, tags=["before"])
    assert len((await client.get("/api/v1/content", params={"tag": "before"})).json()["items"]) == 1
    await client.patch(
        f"/api/v1/content/{content['id']}", json={"tags": ["after"]}, headers=author["headers"]
    )
    assert (await client.get("/api/v1/content", params={"tag": "before"})).json()["items"] == []
    after = (await client.get("/api/v1/content", params={"tag": "after"})).json()["items"]
    assert [item["id"] for item in after] == [content["id"]]


@pytest.mark.parametrize("tag", ["under_score", "x" * 31, "a/b", "", "\u0000"])
async def test_the_list_refuses_an_invalid_tag(client: httpx.AsyncClient, tag: str) -> None:
    problem = assert_problem(
        await client.get("/api/v1/content", params={"tag": tag}), 422, "validation_error"
    )
    assert problem["errors"][0]["parameter"] == "tag"


async def test_concurrent_writes_sharing_new_tags_all_succeed_and_count_right(
    client: httpx.AsyncClient,
) -> None:
    """New tags created by several transactions at once, and counts moved by edits of items
    sharing them in every order: no conflict surfaces, no deadlock, the counts add up."""
    authors = [await authed_user(client) for _ in range(3)]
    orders = [["red", "green", "blue"], ["blue", "red", "green"], ["green", "blue", "red"]]

    async def create(n: int) -> httpx.Response:
        return await client.post(
            "/api/v1/content",
            json=content_body(tags=orders[n % 3]),
            headers=authors[n % 3]["headers"],
        )

    created = await asyncio.gather(*(create(n) for n in range(9)))
    assert [r.status_code for r in created] == [201] * 9, [r.text for r in created]

    async def retag(n: int, response: httpx.Response) -> httpx.Response:
        return await client.patch(
            f"/api/v1/content/{response.json()['id']}",
            json={"tags": orders[(n + 1) % 3][:2]},
            headers=authors[n % 3]["headers"],
        )

    edited = await asyncio.gather(*(retag(n, r) for n, r in enumerate(created)))
    assert [r.status_code for r in edited] == [200] * 9, [r.text for r in edited]
    expected: dict[str, int] = {}
    for response in edited:
        for tag in response.json()["tags"]:
            expected[tag] = expected.get(tag, 0) + 1
    assert dict(await _tag_counts(client)) == expected
