"""`GET /api/v1/content/feed`: published items of the followed authors, most recently
published first, keyset-paged; never a draft, never anyone else's items."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import assert_problem, authed_user, follow, publish, publish_many, read_feed

FEED = "/api/v1/content/feed"


async def _ids(client: httpx.AsyncClient, reader: dict[str, Any]) -> list[str]:
    return [item["id"] for item in (await read_feed(client, reader, limit=100))["items"]]


async def test_the_feed_is_the_followed_authors_items_newest_first(
    client: httpx.AsyncClient,
) -> None:
    reader, ada, bob = [await authed_user(client) for _ in range(3)]
    await follow(client, reader, ada)
    await follow(client, reader, bob)
    first = await publish(client, ada)
    second = await publish(client, bob)
    third = await publish(client, ada)
    body = await read_feed(client, reader)
    assert [item["id"] for item in body["items"]] == [third["id"], second["id"], first["id"]]
    assert body["next_cursor"] is None
    assert body["items"][0] == third  # the content list's item shape


async def test_following_nobody_gives_an_empty_feed(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    await publish(client, author)
    assert await read_feed(client, reader) == {"items": [], "next_cursor": None}


async def test_other_authors_and_drafts_are_never_in_the_feed(client: httpx.AsyncClient) -> None:
    reader, followed, other = [await authed_user(client) for _ in range(3)]
    await follow(client, reader, followed)
    shown = await publish(client, followed)
    await publish(client, followed, status="draft")
    await publish(client, other)
    await publish(client, reader)
    assert await _ids(client, reader) == [shown["id"]]


async def test_a_published_draft_comes_first_by_its_publication(
    client: httpx.AsyncClient,
) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    await follow(client, reader, author)
    draft = await publish(client, author, status="draft")
    older = await publish(client, author)
    response = await client.patch(
        f"/api/v1/content/{draft['id']}", json={"status": "published"}, headers=author["headers"]
    )
    assert response.status_code == 200, response.text
    assert await _ids(client, reader) == [draft["id"], older["id"]]


async def test_unpublished_and_deleted_items_leave_the_feed(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    await follow(client, reader, author)
    kept, unpublished, deleted = [await publish(client, author) for _ in range(3)]
    response = await client.patch(
        f"/api/v1/content/{unpublished['id']}", json={"status": "draft"}, headers=author["headers"]
    )
    assert response.status_code == 200, response.text
    response = await client.delete(f"/api/v1/content/{deleted['id']}", headers=author["headers"])
    assert response.status_code == 204, response.text
    assert await _ids(client, reader) == [kept["id"]]


async def test_a_follow_and_an_unfollow_show_at_once(client: httpx.AsyncClient) -> None:
    reader, ada, bob = [await authed_user(client) for _ in range(3)]
    by_ada = await publish(client, ada)
    by_bob = await publish(client, bob)
    await follow(client, reader, ada)
    await follow(client, reader, bob)
    assert await _ids(client, reader) == [by_bob["id"], by_ada["id"]]
    response = await client.delete(f"/api/v1/users/{bob['id']}/follow", headers=reader["headers"])
    assert response.status_code == 204, response.text
    assert await _ids(client, reader) == [by_ada["id"]]


async def test_one_readers_follows_do_not_reach_anothers_feed(client: httpx.AsyncClient) -> None:
    reader, other_reader, author = [await authed_user(client) for _ in range(3)]
    await follow(client, reader, author)
    await publish(client, author)
    assert await _ids(client, other_reader) == []


async def test_pages_cover_the_feed_in_order_without_gaps_or_repeats(
    client: httpx.AsyncClient,
) -> None:
    reader, ada, bob, other = [await authed_user(client) for _ in range(4)]
    for author in (ada, bob):
        await follow(client, reader, author)
    expected = set(await publish_many(client, ada, 13)) | set(await publish_many(client, bob, 12))
    await publish_many(client, other, 5)
    seen: list[dict[str, Any]] = []
    cursor = None
    sizes = []
    while True:
        body = await read_feed(client, reader, limit=10, **({"cursor": cursor} if cursor else {}))
        sizes.append(len(body["items"]))
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sizes == [10, 10, 5]
    assert {item["id"] for item in seen} == expected
    assert len(seen) == len(expected)
    positions = [(item["published_at"], item["id"]) for item in seen]
    assert positions == sorted(positions, reverse=True)


async def test_a_page_of_exactly_the_rest_has_no_next_cursor(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    await follow(client, reader, author)
    await publish_many(client, author, 4)
    first = await read_feed(client, reader, limit=2)
    second = await read_feed(client, reader, limit=2, cursor=first["next_cursor"])
    assert len(second["items"]) == 2
    assert second["next_cursor"] is None


# --- the attacker's side -------------------------------------------------------------------


async def test_the_feed_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(FEED), 401, "not_authenticated")


async def test_a_forged_cursor_is_422(client: httpx.AsyncClient) -> None:
    reader = await authed_user(client)
    response = await client.get(FEED, params={"cursor": "abc.def"}, headers=reader["headers"])
    assert_problem(response, 422, "validation_error")


async def test_a_cursor_of_another_reader_shows_only_the_callers_feed(
    client: httpx.AsyncClient,
) -> None:
    """A cursor is a position, not a grant: with someone else's cursor the caller still gets
    their own feed from there on."""
    reader, other_reader, ada, bob = [await authed_user(client) for _ in range(4)]
    await follow(client, reader, ada)
    await follow(client, other_reader, bob)
    await publish_many(client, bob, 3)
    mine = set(await publish_many(client, ada, 3))
    cursor = (await read_feed(client, other_reader, limit=1))["next_cursor"]
    body = await read_feed(client, reader, cursor=cursor)
    assert {item["id"] for item in body["items"]} <= mine


async def test_feed_is_not_taken_for_a_content_id(client: httpx.AsyncClient) -> None:
    """`/content/feed` is the feed route, not an item whose id is `feed`."""
    assert_problem(await client.get(FEED), 401, "not_authenticated")
    response = await client.get("/api/v1/content/not-an-id")
    assert_problem(response, 422, "validation_error")
