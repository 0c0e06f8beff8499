from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from src.slices.users.schemas import UserProfile
from tests.helpers import assert_problem, authed_user, publish, sign_up


async def test_get_user_returns_public_profile_only(client: httpx.AsyncClient) -> None:
    user = await sign_up(client, phone_number="+2348011112222", country="Ghana", state="Accra")
    response = await client.get(f"/api/v1/users/{user['id']}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "display_name",
        "country",
        "state",
        "content_count",
        "follower_count",
        "following_count",
        "created_at",
        "contents",
    }
    assert body["contents"] == []
    assert user["email"] not in response.text
    assert "+2348011112222" not in response.text


async def test_unknown_user_is_404_user_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/users/{uuid.uuid4()}")
    assert_problem(response, 404, "user_not_found")


async def test_malformed_user_id_is_422_naming_the_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/not-a-uuid")
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["parameter"] == "user_id"


async def test_list_is_newest_first_and_paginates_without_gaps(client: httpx.AsyncClient) -> None:
    created = [(await sign_up(client))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/api/v1/users", params=params)
        assert response.status_code == 200
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))


async def test_list_never_exposes_email_or_phone(client: httpx.AsyncClient) -> None:
    user = await sign_up(client, phone_number="+4915112345678")
    response = await client.get("/api/v1/users")
    assert user["email"] not in response.text
    assert "+4915112345678" not in response.text


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "99999999999999999999999"])
async def test_out_of_range_limit_is_422(client: httpx.AsyncClient, limit: str) -> None:
    response = await client.get("/api/v1/users", params={"limit": limit})
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["parameter"] == "limit"


async def test_garbled_cursor_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users", params={"cursor": "%%%garbage"})
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["parameter"] == "cursor"


async def test_forged_cursor_is_422(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await sign_up(client)
    page = (await client.get("/api/v1/users", params={"limit": 1})).json()
    _payload, signature = page["next_cursor"].split(".")
    forged_payload = base64.urlsafe_b64encode(
        b'["2000-01-01T00:00:00+00:00","00000000000000000000000000000000"]'
    ).rstrip(b"=")
    response = await client.get(
        "/api/v1/users", params={"cursor": forged_payload.decode() + "." + signature}
    )
    assert_problem(response, 422, "validation_error")


async def test_profile_body_is_byte_for_byte_what_its_model_writes(
    client: httpx.AsyncClient,
) -> None:
    # The profile is rendered from the read model's rows without building the Pydantic model;
    # its bytes must still be exactly the documented schema's serialization.
    titles = ["Ünïcode — title", 'Quotes "and" \\ backslashes', "Plain"]
    name = 'Zoë "Ada" <b> \u00e9\U0001f600'
    author = await authed_user(client, display_name=name, country="Ghana")
    for title in titles:
        await publish(client, author, title=title)
    response = await client.get(f"/api/v1/users/{author['id']}")

    assert response.status_code == 200
    model = UserProfile.model_validate_json(response.content)
    assert response.content == model.model_dump_json().encode()
    assert [item.title for item in model.contents] == list(reversed(titles))
    assert model.display_name == name
    assert model.state is None
    assert model.created_at.tzinfo is not None
