"""`PATCH /api/v1/users/me`: the signup rules, `null` clears, `phone_taken` also in a race."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, authed_user

PATH = "/api/v1/users/me"


async def _patch(client: httpx.AsyncClient, user: dict[str, Any], body: Any) -> httpx.Response:
    return await client.patch(PATH, json=body, headers=user["headers"])


async def test_changes_the_fields_given_and_answers_the_private_profile(
    client: httpx.AsyncClient,
) -> None:
    user = await authed_user(client, phone_number="+2348000000001", country="Nigeria")
    response = await _patch(
        client,
        user,
        {"name": "Ada King", "display_name": "Countess", "state": "Surrey", "country": "England"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "id": user["id"],
        "name": "Ada King",
        "email": user["email"],
        "display_name": "Countess",
        "phone_number": "+2348000000001",
        "country": "England",
        "state": "Surrey",
        "role": "creator",
        "is_active": True,
        "created_at": user["created_at"],
        "content_count": 0,
        "follower_count": 0,
        "following_count": 0,
    }
    me = await client.get(PATH, headers=user["headers"])
    assert me.json() == body
    public = (await client.get(f"/api/v1/users/{user['id']}")).json()
    assert (public["name"], public["display_name"], public["country"]) == (
        "Ada King",
        "Countess",
        "England",
    )


async def test_null_clears_an_optional_field(client: httpx.AsyncClient) -> None:
    user = await authed_user(
        client, phone_number="+2348000000002", country="Ghana", state="Accra", display_name="Ada"
    )
    response = await _patch(
        client, user, {"phone_number": None, "country": None, "state": None, "display_name": None}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["phone_number"], body["country"], body["state"]) == (None, None, None)
    assert body["display_name"] == user["name"]  # cleared: the name again, as at signup


async def test_an_empty_display_name_is_the_name_as_at_signup(client: httpx.AsyncClient) -> None:
    user = await authed_user(client, display_name="Ada")
    body = (await _patch(client, user, {"name": "Augusta Ada", "display_name": ""})).json()
    assert body["display_name"] == "Augusta Ada"


async def test_a_name_change_keeps_an_explicit_display_name(client: httpx.AsyncClient) -> None:
    user = await authed_user(client, display_name="Ada")
    body = (await _patch(client, user, {"name": "Augusta Ada"})).json()
    assert (body["name"], body["display_name"]) == ("Augusta Ada", "Ada")


async def test_the_same_values_again_change_nothing(client: httpx.AsyncClient) -> None:
    user = await authed_user(client, phone_number="+2348000000003")
    again = await _patch(client, user, {"phone_number": "+2348000000003", "name": user["name"]})
    assert again.status_code == 200
    assert again.json()["phone_number"] == "+2348000000003"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": ""}, "/name"),
        ({"name": "12345"}, "/name"),  # must contain a letter
        ({"name": "x" * 101}, "/name"),
        ({"name": "Ada\u202eLovelace"}, "/name"),
        ({"display_name": "x" * 101}, "/display_name"),
        ({"phone_number": "0803"}, "/phone_number"),
        ({"phone_number": "+12"}, "/phone_number"),
        ({"country": "x" * 101}, "/country"),
        ({"state": "line\nbreak"}, "/state"),
        ({"email": "new@example.com"}, "/email"),
        ({"role": "admin"}, "/role"),
        ({"password": "new password"}, "/password"),
    ],
)
async def test_the_signup_rules_apply(
    client: httpx.AsyncClient, body: dict[str, Any], pointer: str
) -> None:
    user = await authed_user(client)
    problem = assert_problem(await _patch(client, user, body), 422, "validation_error")
    assert pointer in [error.get("pointer") for error in problem["errors"]]


@pytest.mark.parametrize("body", [{}, {"name": None}, [], "name"])
async def test_nothing_to_change_or_a_null_name_is_422(
    client: httpx.AsyncClient, body: Any
) -> None:
    user = await authed_user(client)
    assert_problem(await _patch(client, user, body), 422, "validation_error")
    assert (await client.get(PATH, headers=user["headers"])).json()["name"] == user["name"]


async def test_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.patch(PATH, json={"name": "Nobody"})
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_phone_number_another_account_has_is_409(client: httpx.AsyncClient) -> None:
    await authed_user(client, phone_number="+2348000000004")
    user = await authed_user(client)
    response = await _patch(client, user, {"phone_number": "+2348000000004", "name": "Changed"})
    assert_problem(response, 409, "phone_taken")
    assert (await client.get(PATH, headers=user["headers"])).json()["name"] == user["name"]


async def test_two_accounts_racing_for_one_phone_number_one_wins_one_gets_409(
    client: httpx.AsyncClient,
) -> None:
    for attempt in range(3):
        phone = f"+23480000001{attempt:02d}"
        racers = [await authed_user(client) for _ in range(2)]
        answers = await asyncio.gather(
            *(_patch(client, racer, {"phone_number": phone}) for racer in racers)
        )
        assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
        assert_problem(next(a for a in answers if a.status_code == 409), 409, "phone_taken")
        phones = [
            (await client.get(PATH, headers=racer["headers"])).json()["phone_number"]
            for racer in racers
        ]
        assert sorted(phones, key=str) == sorted([phone, None], key=str)


async def test_the_unique_constraint_decides_when_the_early_check_misses(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-up before the write is only a shortcut: without it the constraint answers."""
    from src.slices.users.commands import UpdateProfile

    async def miss(self: Any, user_id: Any, phone: str) -> None:
        return None

    monkeypatch.setattr(UpdateProfile, "_refuse_taken_phone", miss)
    await authed_user(client, phone_number="+2348000000005")
    user = await authed_user(client)
    response = await _patch(client, user, {"phone_number": "+2348000000005"})
    assert_problem(response, 409, "phone_taken")
