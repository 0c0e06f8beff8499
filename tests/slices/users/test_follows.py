"""Follows: `PUT` / `DELETE /api/v1/users/{id}/follow`, the counts in every profile, and the
attacker's side (no token, following oneself, unknown and deactivated users)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from src.core.tables import follows
from tests.helpers import admin_user, assert_problem, authed_user


def _follow_url(user: dict[str, Any]) -> str:
    return f"/api/v1/users/{user['id']}/follow"


async def _counts(client: httpx.AsyncClient, user: dict[str, Any]) -> tuple[int, int]:
    response = await client.get(f"/api/v1/users/{user['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    return body["follower_count"], body["following_count"]


async def _follow_rows(client: httpx.AsyncClient) -> int:
    engine = client.app.state.resources.database.write_engine  # type: ignore[attr-defined]
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(follows))).scalar())


async def test_follow_answers_204_and_counts_on_both_sides(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    response = await client.put(_follow_url(author), headers=reader["headers"])
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await _counts(client, author) == (1, 0)
    assert await _counts(client, reader) == (0, 1)


async def test_a_repeated_follow_is_204_and_changes_nothing(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    for _ in range(3):
        response = await client.put(_follow_url(author), headers=reader["headers"])
        assert response.status_code == 204, response.text
    assert await _counts(client, author) == (1, 0)
    assert await _follow_rows(client) == 1


async def test_concurrent_follows_of_one_pair_make_one_row(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    answers = await asyncio.gather(
        *(client.put(_follow_url(author), headers=reader["headers"]) for _ in range(8))
    )
    assert [answer.status_code for answer in answers] == [204] * 8
    assert await _follow_rows(client) == 1
    assert await _counts(client, author) == (1, 0)
    assert await _counts(client, reader) == (0, 1)


async def test_many_followers_are_counted_exactly(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    readers = [await authed_user(client) for _ in range(5)]
    answers = await asyncio.gather(
        *(client.put(_follow_url(author), headers=reader["headers"]) for reader in readers)
    )
    assert {answer.status_code for answer in answers} == {204}
    assert await _counts(client, author) == (5, 0)


async def test_unfollow_answers_204_and_the_counts_drop(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    await client.put(_follow_url(author), headers=reader["headers"])
    response = await client.delete(_follow_url(author), headers=reader["headers"])
    assert response.status_code == 204, response.text
    assert await _counts(client, author) == (0, 0)
    assert await _counts(client, reader) == (0, 0)
    assert await _follow_rows(client) == 0


async def test_unfollowing_someone_not_followed_is_204_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    reader, author, other = [await authed_user(client) for _ in range(3)]
    await client.put(_follow_url(other), headers=reader["headers"])
    for _ in range(2):
        response = await client.delete(_follow_url(author), headers=reader["headers"])
        assert response.status_code == 204, response.text
    assert await _counts(client, author) == (0, 0)
    assert await _counts(client, reader) == (0, 1)


async def test_follow_again_after_unfollowing_counts_once(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    for method in ("PUT", "DELETE", "PUT"):
        response = await client.request(method, _follow_url(author), headers=reader["headers"])
        assert response.status_code == 204, response.text
    assert await _counts(client, author) == (1, 0)


async def test_counts_appear_in_me_and_in_the_user_list(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    await client.put(_follow_url(author), headers=reader["headers"])
    me = (await client.get("/api/v1/users/me", headers=reader["headers"])).json()
    assert (me["follower_count"], me["following_count"]) == (0, 1)
    listed = {user["id"]: user for user in (await client.get("/api/v1/users")).json()["items"]}
    assert (listed[author["id"]]["follower_count"], listed[author["id"]]["following_count"]) == (
        1,
        0,
    )


async def test_a_profile_edit_answers_the_follow_counts(client: httpx.AsyncClient) -> None:
    reader, author = await authed_user(client), await authed_user(client)
    await client.put(_follow_url(author), headers=reader["headers"])
    response = await client.patch(
        "/api/v1/users/me", json={"country": "Kenya"}, headers=reader["headers"]
    )
    assert response.status_code == 200, response.text
    assert (response.json()["follower_count"], response.json()["following_count"]) == (0, 1)


# --- the attacker's side -------------------------------------------------------------------


async def test_follow_and_unfollow_without_a_token_are_401(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    for method in ("PUT", "DELETE"):
        assert_problem(await client.request(method, _follow_url(author)), 401, "not_authenticated")
    assert await _counts(client, author) == (0, 0)


async def test_following_yourself_is_422(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    for method in ("PUT", "DELETE"):
        response = await client.request(method, _follow_url(user), headers=user["headers"])
        assert_problem(response, 422, "validation_error")
    assert await _counts(client, user) == (0, 0)


async def test_following_an_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    reader = await authed_user(client)
    stranger = {"id": str(uuid.uuid4())}
    for method in ("PUT", "DELETE"):
        response = await client.request(method, _follow_url(stranger), headers=reader["headers"])
        assert_problem(response, 404, "user_not_found")
    assert await _follow_rows(client) == 0


async def test_following_a_deactivated_user_is_404_but_unfollowing_works(
    client: httpx.AsyncClient,
) -> None:
    admin, reader = await admin_user(client), await authed_user(client)
    author = await authed_user(client)
    await client.put(_follow_url(author), headers=reader["headers"])
    late = await authed_user(client)
    deactivated = await client.patch(
        f"/api/v1/admin/users/{author['id']}", json={"is_active": False}, headers=admin["headers"]
    )
    assert deactivated.status_code == 200, deactivated.text
    assert_problem(
        await client.put(_follow_url(author), headers=late["headers"]), 404, "user_not_found"
    )
    response = await client.delete(_follow_url(author), headers=reader["headers"])
    assert response.status_code == 204, response.text
    assert await _counts(client, reader) == (0, 0)


async def test_a_malformed_user_id_is_422(client: httpx.AsyncClient) -> None:
    reader = await authed_user(client)
    response = await client.put("/api/v1/users/not-an-id/follow", headers=reader["headers"])
    assert_problem(response, 422, "validation_error")
