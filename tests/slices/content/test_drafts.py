"""Drafts: visible to their author and admins only, on every path, cached or not.

Each path a draft could leak through is tried from the outside — anonymous, another user,
a forged or expired token — and from the author's side, whose reads must not fill a shared
cache entry that others are then served.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from src.cli import main as cli
from tests.conftest import Backend
from tests.helpers import assert_problem, authed_user, bearer, log_in, publish


async def _admin(
    client: httpx.AsyncClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    admin = await authed_user(client)
    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    assert await asyncio.to_thread(cli, ["promote-admin", admin["email"]]) == 0
    return {**admin, "headers": bearer((await log_in(client, admin))["access_token"])}


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_a_draft_has_no_publication_time_and_is_its_authors_alone(
    client: httpx.AsyncClient,
) -> None:
    author, stranger = await authed_user(client), await authed_user(client)
    draft = await publish(client, author, title="Secret Plans", status="draft")
    assert draft["status"] == "draft"
    assert draft["published_at"] is None
    for path in (f"/api/v1/content/{draft['id']}", "/api/v1/content/slug/secret-plans"):
        mine = await client.get(path, headers=author["headers"])
        assert mine.status_code == 200
        assert mine.json() == draft
        assert mine.headers["cache-status"] == "inkwell; fwd=bypass"
        assert_problem(await client.get(path), 404, "content_not_found")
        assert_problem(
            await client.get(path, headers=stranger["headers"]), 404, "content_not_found"
        )


async def test_an_admin_sees_anyones_draft(
    client: httpx.AsyncClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    author = await authed_user(client)
    admin = await _admin(client, backend, monkeypatch)
    draft = await publish(client, author, title="Under Review", status="draft")
    for path in (f"/api/v1/content/{draft['id']}", "/api/v1/content/slug/under-review"):
        response = await client.get(path, headers=admin["headers"])
        assert response.status_code == 200
        assert response.json()["id"] == draft["id"]
    edited = await client.patch(
        f"/api/v1/content/{draft['id']}", json={"title": "Reviewed"}, headers=admin["headers"]
    )
    assert edited.status_code == 200
    assert edited.json()["status"] == "draft"


async def test_the_authors_read_never_fills_the_shared_cache(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    draft = await publish(client, author, title="Not Yet", status="draft")
    for path in (f"/api/v1/content/{draft['id']}", "/api/v1/content/slug/not-yet"):
        for _ in range(3):
            assert (await client.get(path, headers=author["headers"])).status_code == 200
        assert_problem(await client.get(path), 404, "content_not_found")


async def test_a_bad_token_is_refused_rather_than_read_as_anonymous(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    draft = await publish(client, author, status="draft")
    forged = author["tokens"]["access_token"][:-4] + "AAAA"
    refresh = author["tokens"]["refresh_token"]
    for token in (forged, refresh, "not-a-jwt"):
        response = await client.get(f"/api/v1/content/{draft['id']}", headers=bearer(token))
        assert_problem(response, 401, "invalid_token")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_drafts_are_in_no_public_list_search_tag_count_or_profile(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    public = await publish(client, author, title="Public zephyr", tags=["shared"])
    draft = await publish(
        client, author, title="Private zephyr", tags=["shared", "hidden"], status="draft"
    )
    for params in (
        {},
        {"author_id": author["id"]},
        {"tag": "shared"},
        {"tag": "hidden"},
        {"q": "zephyr"},
        {"q": "private"},
        {"q": "zephyr", "author_id": author["id"], "tag": "shared"},
    ):
        for headers in ({}, author["headers"]):  # not even to the author: these are public
            ids = _ids(await client.get("/api/v1/content", params=params, headers=headers))
            assert draft["id"] not in ids, params
    tags = (await client.get("/api/v1/tags")).json()["items"]
    assert tags == [{"name": "shared", "count": 1}]
    profile = (await client.get(f"/api/v1/users/{author['id']}")).json()
    assert [c["id"] for c in profile["contents"]] == [public["id"]]
    assert profile["contents"][0]["slug"] == "public-zephyr"
    assert profile["content_count"] == 1
    me = (await client.get("/api/v1/users/me", headers=author["headers"])).json()
    assert me["content_count"] == 1


async def test_publishing_a_draft_sets_published_at_once_and_shows_it_everywhere(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    draft = await publish(client, author, title="Coming Soon", tags=["launch"], status="draft")
    url = f"/api/v1/content/{draft['id']}"
    published = await client.patch(url, json={"status": "published"}, headers=author["headers"])
    assert published.status_code == 200
    first_published_at = published.json()["published_at"]
    assert first_published_at is not None
    assert first_published_at >= draft["created_at"]
    assert (await client.get(url)).json() == published.json()
    assert (await client.get("/api/v1/content/slug/coming-soon")).status_code == 200
    assert _ids(await client.get("/api/v1/content", params={"q": "coming"})) == [draft["id"]]
    assert _ids(await client.get("/api/v1/content", params={"tag": "launch"})) == [draft["id"]]
    profile = (await client.get(f"/api/v1/users/{author['id']}")).json()
    assert profile["content_count"] == 1

    # Unpublish, then publish again: the first publication time is kept.
    unpublished = await client.patch(url, json={"status": "draft"}, headers=author["headers"])
    assert unpublished.json()["published_at"] is None
    again = await client.patch(url, json={"status": "published"}, headers=author["headers"])
    assert again.json()["published_at"] == first_published_at
    # Editing a published item leaves it too.
    edited = await client.patch(url, json={"title": "Here Now"}, headers=author["headers"])
    assert edited.json()["published_at"] == first_published_at


async def test_unpublishing_drops_every_cached_copy_at_once(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    content = await publish(client, author, title="Going Away", tags=["gone"])
    item_url, slug_url = f"/api/v1/content/{content['id']}", "/api/v1/content/slug/going-away"
    lists = [{}, {"tag": "gone"}, {"q": "going"}, {"author_id": author["id"]}]
    for _ in range(2):  # the second round is served from the cache
        for path in (item_url, slug_url):
            assert (await client.get(path)).status_code == 200
        for params in lists:
            assert _ids(await client.get("/api/v1/content", params=params)) == [content["id"]]
    assert (await client.get(item_url)).headers["cache-status"] == "inkwell; hit"

    response = await client.patch(item_url, json={"status": "draft"}, headers=author["headers"])
    assert response.status_code == 200
    for path in (item_url, slug_url):
        assert_problem(await client.get(path), 404, "content_not_found")
    for params in lists:
        assert _ids(await client.get("/api/v1/content", params=params)) == []
    assert (await client.get("/api/v1/tags")).json()["items"] == []
    profile = (await client.get(f"/api/v1/users/{author['id']}")).json()
    assert (profile["content_count"], profile["contents"]) == (0, [])


async def test_no_read_after_an_unpublish_sees_the_item(client: httpx.AsyncClient) -> None:
    """Anonymous readers hammer the item while its author unpublishes it: no read that starts
    after the unpublish has answered may return it."""
    author = await authed_user(client)
    content = await publish(client, author, title="Flicker")
    url = f"/api/v1/content/{content['id']}"
    unpublished = False
    leaks: list[int] = []

    async def reader() -> None:
        for _ in range(60):
            after = unpublished
            response = await client.get(url)
            if after and response.status_code != 404:
                leaks.append(response.status_code)
            await asyncio.sleep(0)

    async def writer() -> None:
        nonlocal unpublished
        await asyncio.sleep(0.01)
        response = await client.patch(url, json={"status": "draft"}, headers=author["headers"])
        assert response.status_code == 200
        unpublished = True

    await asyncio.gather(writer(), *(reader() for _ in range(6)))
    assert unpublished
    assert leaks == []


async def test_someone_elses_draft_cannot_be_edited_or_deleted_and_is_not_revealed(
    client: httpx.AsyncClient,
) -> None:
    author, intruder = await authed_user(client), await authed_user(client)
    draft = await publish(client, author, status="draft")
    url = f"/api/v1/content/{draft['id']}"
    patch = await client.patch(url, json={"status": "published"}, headers=intruder["headers"])
    assert_problem(patch, 404, "content_not_found")
    assert_problem(await client.delete(url, headers=intruder["headers"]), 404, "content_not_found")
    still = await client.get(url, headers=author["headers"])
    assert still.json()["status"] == "draft"


@pytest.mark.parametrize("status", ["archived", "", "Published", None, 1])
async def test_an_unknown_status_is_422(client: httpx.AsyncClient, status: Any) -> None:
    author = await authed_user(client)
    response = await client.post(
        "/api/v1/content",
        json={"title": "Hello", "content": "Long enough content.", "status": status},
        headers=author["headers"],
    )
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["pointer"] == "/status"


async def test_content_count_follows_publish_unpublish_and_delete(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)

    async def count() -> int:
        return int((await client.get(f"/api/v1/users/{author['id']}")).json()["content_count"])

    draft = await publish(client, author, status="draft")
    published = await publish(client, author)
    assert await count() == 1
    await client.patch(
        f"/api/v1/content/{draft['id']}", json={"status": "published"}, headers=author["headers"]
    )
    assert await count() == 2
    await client.patch(
        f"/api/v1/content/{published['id']}", json={"status": "draft"}, headers=author["headers"]
    )
    assert await count() == 1
    await client.delete(f"/api/v1/content/{published['id']}", headers=author["headers"])
    assert await count() == 1  # it was a draft: the count does not move
    await client.delete(f"/api/v1/content/{draft['id']}", headers=author["headers"])
    assert await count() == 0


# --- GET /api/v1/users/me/content ----------------------------------------------------------


async def test_my_content_lists_drafts_too_newest_first_and_filters_by_status(
    client: httpx.AsyncClient,
) -> None:
    author, other = await authed_user(client), await authed_user(client)
    first = await publish(client, author)
    draft = await publish(client, author, status="draft")
    last = await publish(client, author)
    await publish(client, other, status="draft")
    url = "/api/v1/users/me/content"
    assert _ids(await client.get(url, headers=author["headers"])) == [
        last["id"],
        draft["id"],
        first["id"],
    ]
    drafts = await client.get(url, params={"status": "draft"}, headers=author["headers"])
    assert _ids(drafts) == [draft["id"]]
    published = await client.get(url, params={"status": "published"}, headers=author["headers"])
    assert _ids(published) == [last["id"], first["id"]]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(url, params=params, headers=author["headers"])).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [last["id"], draft["id"], first["id"]]


async def test_my_content_is_cached_per_caller(client: httpx.AsyncClient) -> None:
    alice, bob = await authed_user(client), await authed_user(client)
    draft = await publish(client, alice, status="draft")
    url = "/api/v1/users/me/content"
    assert _ids(await client.get(url, headers=alice["headers"])) == [draft["id"]]
    cached = await client.get(url, headers=alice["headers"])
    assert cached.headers["cache-status"] == "inkwell; hit"
    assert _ids(await client.get(url, headers=bob["headers"])) == []
    newer = await publish(client, alice, status="draft")
    assert _ids(await client.get(url, headers=alice["headers"])) == [newer["id"], draft["id"]]


async def test_my_content_needs_a_token_and_a_known_status(client: httpx.AsyncClient) -> None:
    url = "/api/v1/users/me/content"
    response = await client.get(url)
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    author = await authed_user(client)
    problem = assert_problem(
        await client.get(url, params={"status": "archived"}, headers=author["headers"]),
        422,
        "validation_error",
    )
    assert problem["errors"][0]["parameter"] == "status"
