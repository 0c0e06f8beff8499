"""Notifications through the HTTP API, delivered by the embedded event runner (the serve
process's own, on this backend's database): what each user is told, reading and marking
them, paging, and the attacker's side."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, authed_user, follow, publish

NOTIFICATIONS = "/api/v1/notifications"


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    """Without Redis the application delivers its events itself (on either database)."""
    async with make_client(redis_url=None) as http:
        yield http


async def _list(client: httpx.AsyncClient, user: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = await client.get(NOTIFICATIONS, params=params, headers=user["headers"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()  # type: ignore[no-any-return]


async def _until(
    client: httpx.AsyncClient, user: dict[str, Any], count: int, timeout: float = 15.0
) -> dict[str, Any]:
    """The user's notifications once there are at least `count` (the deadline only turns a
    hang into a failure)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = await _list(client, user, limit=100)
        if len(body["items"]) >= count:
            return body
        assert asyncio.get_running_loop().time() < deadline, f"never {count}: {body}"
        await asyncio.sleep(0.05)


async def test_a_follow_tells_the_followed_who_it_was(client: httpx.AsyncClient) -> None:
    reader = await authed_user(client, display_name="The Reader")
    author = await authed_user(client)
    await follow(client, reader, author)
    body = await _until(client, author, 1)
    (item,) = body["items"]
    assert item["type"] == "new_follower"
    assert item["actor"] == {
        "id": reader["id"],
        "name": reader["name"],
        "display_name": "The Reader",
    }
    assert "content" not in item
    assert item["read_at"] is None
    uuid.UUID(item["id"])
    assert body["unread_count"] == 1
    assert body["next_cursor"] is None
    assert (await _list(client, reader))["items"] == []


async def test_a_publication_reaches_every_follower(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    followers = [await authed_user(client) for _ in range(3)]
    bystander = await authed_user(client)
    for follower in followers:
        await follow(client, follower, author)
    item = await publish(client, author)
    for follower in followers:
        body = await _until(client, follower, 1)
        (notification,) = body["items"]
        assert notification["type"] == "content_published"
        assert notification["actor"] == {
            "id": author["id"],
            "name": author["name"],
            "display_name": author["display_name"],
        }
        assert notification["content"] == {
            "id": item["id"],
            "title": item["title"],
            "slug": item["slug"],
        }
    # The author's new followers were told too: that is the barrier for the bystander.
    await _until(client, author, 3)
    assert (await _list(client, bystander))["items"] == []


async def test_a_draft_notifies_nobody_until_it_is_published(client: httpx.AsyncClient) -> None:
    author, reader = await authed_user(client), await authed_user(client)
    await follow(client, reader, author)
    draft = await publish(client, author, status="draft")
    response = await client.patch(
        f"/api/v1/content/{draft['id']}", json={"status": "published"}, headers=author["headers"]
    )
    assert response.status_code == 200, response.text
    body = await _until(client, reader, 1)
    assert [n["content"]["id"] for n in body["items"]] == [draft["id"]]


async def test_a_repeated_follow_notifies_once(client: httpx.AsyncClient) -> None:
    author, reader, later = [await authed_user(client) for _ in range(3)]
    for _ in range(3):
        await follow(client, reader, author)
    # Committed after the repeats, so delivered after anything they made: once its
    # notification is there, a second one for `reader` would be too.
    await follow(client, later, author)
    await _until(client, author, 2)
    body = await _list(client, author)
    assert sorted(n["actor"]["id"] for n in body["items"]) == sorted([reader["id"], later["id"]])


async def test_newest_first_and_paged(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    readers = [await authed_user(client) for _ in range(5)]
    for reader in readers:
        await follow(client, reader, author)
        await _until(client, author, readers.index(reader) + 1)  # one commit after another
    first = await _list(client, author, limit=2)
    second = await _list(client, author, limit=2, cursor=first["next_cursor"])
    third = await _list(client, author, limit=2, cursor=second["next_cursor"])
    actors = [n["actor"]["id"] for page in (first, second, third) for n in page["items"]]
    assert actors == [reader["id"] for reader in reversed(readers)]
    assert third["next_cursor"] is None
    assert {page["unread_count"] for page in (first, second, third)} == {5}


async def test_marking_one_read(client: httpx.AsyncClient) -> None:
    author, one, two = [await authed_user(client) for _ in range(3)]
    await follow(client, one, author)
    await follow(client, two, author)
    body = await _until(client, author, 2)
    target = body["items"][0]
    response = await client.post(f"{NOTIFICATIONS}/{target['id']}/read", headers=author["headers"])
    assert response.status_code == 204, response.text
    assert response.content == b""
    body = await _list(client, author)
    read = {n["id"]: n["read_at"] for n in body["items"]}
    assert read[target["id"]] is not None
    assert body["unread_count"] == 1
    unread = await _list(client, author, unread="true")
    assert [n["id"] for n in unread["items"]] == [body["items"][1]["id"]]
    assert unread["unread_count"] == 1
    again = await client.post(f"{NOTIFICATIONS}/{target['id']}/read", headers=author["headers"])
    assert again.status_code == 204, again.text
    after = {n["id"]: n["read_at"] for n in (await _list(client, author))["items"]}
    assert after[target["id"]] == read[target["id"]]  # the first reading's moment stays


async def test_marking_all_read(client: httpx.AsyncClient) -> None:
    author, one, two = [await authed_user(client) for _ in range(3)]
    await follow(client, one, author)
    await follow(client, two, author)
    await _until(client, author, 2)
    for _ in range(2):
        response = await client.post(f"{NOTIFICATIONS}/read-all", headers=author["headers"])
        assert response.status_code == 204, response.text
    body = await _list(client, author)
    assert body["unread_count"] == 0
    assert all(n["read_at"] is not None for n in body["items"])
    assert (await _list(client, author, unread="true"))["items"] == []


# --- the attacker's side -------------------------------------------------------------------


async def test_every_notification_operation_needs_a_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(NOTIFICATIONS), 401, "not_authenticated")
    assert_problem(await client.post(f"{NOTIFICATIONS}/read-all"), 401, "not_authenticated")
    response = await client.post(f"{NOTIFICATIONS}/{uuid.uuid4()}/read")
    assert_problem(response, 401, "not_authenticated")


async def test_another_users_notification_cannot_be_marked_read(
    client: httpx.AsyncClient,
) -> None:
    author, reader, attacker = [await authed_user(client) for _ in range(3)]
    await follow(client, reader, author)
    (target,) = (await _until(client, author, 1))["items"]
    response = await client.post(
        f"{NOTIFICATIONS}/{target['id']}/read", headers=attacker["headers"]
    )
    assert_problem(response, 404, "notification_not_found")
    response = await client.post(f"{NOTIFICATIONS}/read-all", headers=attacker["headers"])
    assert response.status_code == 204, response.text
    body = await _list(client, author)
    assert body["items"][0]["read_at"] is None
    assert body["unread_count"] == 1


async def test_an_unknown_notification_is_404(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    response = await client.post(f"{NOTIFICATIONS}/{uuid.uuid4()}/read", headers=user["headers"])
    assert_problem(response, 404, "notification_not_found")
    response = await client.post(f"{NOTIFICATIONS}/not-an-id/read", headers=user["headers"])
    assert_problem(response, 422, "validation_error")


async def test_nobody_reads_anothers_notifications(client: httpx.AsyncClient) -> None:
    """The list is the caller's alone, whatever cursor they bring."""
    author, reader, attacker = [await authed_user(client) for _ in range(3)]
    other = await authed_user(client)
    await follow(client, reader, author)
    await follow(client, other, author)
    first = await _until(client, author, 2)
    mine = await _list(client, attacker, limit=1)
    assert mine == {"items": [], "next_cursor": None, "unread_count": 0}
    page = await _list(client, author, limit=1)
    stolen = await _list(client, attacker, limit=1, cursor=page["next_cursor"])
    assert stolen["items"] == []
    assert first["unread_count"] == 2


async def test_a_forged_cursor_is_422(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    response = await client.get(
        NOTIFICATIONS, params={"cursor": "abc.def"}, headers=user["headers"]
    )
    assert_problem(response, 422, "validation_error")
