"""Conversations: create, list, list messages, delete — and every rule from the attacker's
side (someone else's conversation does not exist for them; no token is 401)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, authed_user

BASE = "/api/v1/conversations"


async def _create(client: httpx.AsyncClient, user: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.post(BASE, json=body, headers=user["headers"])
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_create_answers_201_with_location_and_the_contract_fields(
    client: httpx.AsyncClient,
) -> None:
    user = await authed_user(client)
    response = await client.post(BASE, json={"title": "  Tea notes "}, headers=user["headers"])
    assert response.status_code == 201, response.text
    conversation = response.json()
    assert list(conversation) == ["id", "title", "message_count", "created_at", "updated_at"]
    assert conversation["title"] == "Tea notes"
    assert conversation["message_count"] == 0
    assert conversation["created_at"] == conversation["updated_at"]
    assert response.headers["location"] == f"{BASE}/{conversation['id']}"


@pytest.mark.parametrize("body", [None, {}, {"title": ""}, {"title": "   "}, {"title": None}])
async def test_without_a_title_it_is_new_conversation(
    client: httpx.AsyncClient, body: dict[str, Any] | None
) -> None:
    user = await authed_user(client)
    response = await client.post(BASE, json=body, headers=user["headers"])
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "New conversation"


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x" * 201},
        {"title": "two\nlines"},
        {"title": "zero\u200bwidth"},
        {"title": 5},
        {"other": "field"},
    ],
)
async def test_a_bad_title_is_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    user = await authed_user(client)
    response = await client.post(BASE, json=body, headers=user["headers"])
    assert_problem(response, 422, "validation_error")


async def test_list_is_the_callers_own_only(client: httpx.AsyncClient) -> None:
    ada = await authed_user(client)
    eve = await authed_user(client)
    mine = await _create(client, ada, title="mine")
    await _create(client, eve, title="theirs")
    response = await client.get(BASE, headers=ada["headers"])
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [mine], "next_cursor": None}


async def test_list_pages_most_recently_active_first_without_gaps_or_repeats(
    client: httpx.AsyncClient,
) -> None:
    user = await authed_user(client)
    created = [await _create(client, user, title=f"c{n}") for n in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(BASE, params=params, headers=user["headers"])).json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [item["id"] for item in reversed(created)]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"cursor": "forged.cursor"}])
async def test_list_refuses_bad_paging(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    user = await authed_user(client)
    response = await client.get(BASE, params=params, headers=user["headers"])
    assert_problem(response, 422, "validation_error")


async def test_a_messages_cursor_is_not_a_list_cursor(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    for _ in range(2):
        await _create(client, user)
    cursor = (await client.get(BASE, params={"limit": 1}, headers=user["headers"])).json()[
        "next_cursor"
    ]
    conversation = await _create(client, user)
    response = await client.get(
        f"{BASE}/{conversation['id']}/messages", params={"cursor": cursor}, headers=user["headers"]
    )
    assert_problem(response, 422, "validation_error")


async def test_a_new_conversation_has_no_messages(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    conversation = await _create(client, user)
    response = await client.get(f"{BASE}/{conversation['id']}/messages", headers=user["headers"])
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_cursor": None}


async def test_delete_answers_204_and_the_conversation_is_gone(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    conversation = await _create(client, user)
    kept = await _create(client, user)
    response = await client.delete(f"{BASE}/{conversation['id']}", headers=user["headers"])
    assert response.status_code == 204, response.text
    assert response.content == b""
    listed = (await client.get(BASE, headers=user["headers"])).json()
    assert [item["id"] for item in listed["items"]] == [kept["id"]]
    again = await client.delete(f"{BASE}/{conversation['id']}", headers=user["headers"])
    assert_problem(again, 404, "conversation_not_found")
    messages = await client.get(f"{BASE}/{conversation['id']}/messages", headers=user["headers"])
    assert_problem(messages, 404, "conversation_not_found")


# --- from the attacker's side -------------------------------------------------------------


async def test_someone_elses_conversation_is_404_on_every_endpoint(
    client: httpx.AsyncClient,
) -> None:
    owner = await authed_user(client)
    attacker = await authed_user(client)
    conversation = await _create(client, owner, title="private")
    path = f"{BASE}/{conversation['id']}"
    attempts = [
        await client.get(f"{path}/messages", headers=attacker["headers"]),
        await client.post(
            f"{path}/messages", json={"content": "hello"}, headers=attacker["headers"]
        ),
        await client.post(
            f"{path}/messages",
            json={"content": "hello"},
            headers={**attacker["headers"], "Accept": "text/event-stream"},
        ),
        await client.delete(path, headers=attacker["headers"]),
    ]
    for response in attempts:
        assert_problem(response, 404, "conversation_not_found")
    # and nothing changed for the owner
    listed = (await client.get(BASE, headers=owner["headers"])).json()
    assert listed["items"] == [conversation]
    messages = (await client.get(f"{path}/messages", headers=owner["headers"])).json()
    assert messages["items"] == []


async def test_an_unknown_id_is_the_same_404_as_someone_elses(client: httpx.AsyncClient) -> None:
    owner = await authed_user(client)
    attacker = await authed_user(client)
    theirs = await _create(client, owner)
    unknown = str(uuid.uuid4())
    for conversation_id in (theirs["id"], unknown):
        response = await client.delete(f"{BASE}/{conversation_id}", headers=attacker["headers"])
        problem = assert_problem(response, 404, "conversation_not_found")
        assert problem["detail"] == "No conversation of yours has this id."


async def test_a_malformed_id_is_422(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    response = await client.get(f"{BASE}/not-a-uuid/messages", headers=user["headers"])
    assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", ""),
        ("GET", ""),
        ("GET", "/{id}/messages"),
        ("POST", "/{id}/messages"),
        ("DELETE", "/{id}"),
    ],
)
async def test_every_endpoint_needs_a_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    owner = await authed_user(client)
    conversation = await _create(client, owner)
    url = BASE + path.format(id=conversation["id"])
    body = {"content": "hello"} if path.endswith("messages") and method == "POST" else None
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
    listed = (await client.get(BASE, headers=owner["headers"])).json()
    assert listed["items"] == [conversation]


async def test_a_viewer_may_converse(make_client: Any) -> None:
    async with make_client(signup_role="viewer") as client:
        viewer = await authed_user(client)
        conversation = await _create(client, viewer)
        assert conversation["message_count"] == 0
