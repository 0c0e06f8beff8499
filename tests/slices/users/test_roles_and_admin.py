"""Roles (`viewer`, `creator`, `admin`), `SIGNUP_ROLE`, and `PATCH /api/v1/admin/users/{id}`.

What a non-admin, a viewer or an admin acting on themselves may *not* do is in
tests/security/test_account_attacks.py; here is what the rules let through.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.helpers import (
    admin_user,
    assert_problem,
    authed_user,
    bearer,
    content_body,
    log_in,
    publish,
    sign_up,
)


def _admin_path(user: dict[str, Any]) -> str:
    return f"/api/v1/admin/users/{user['id']}"


async def _administer(
    client: httpx.AsyncClient, admin: dict[str, Any], user: dict[str, Any], body: Any
) -> httpx.Response:
    return await client.patch(_admin_path(user), json=body, headers=admin["headers"])


async def test_signup_gives_creator_by_default(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    assert user["role"] == "creator"
    assert (await publish(client, user))["author"]["id"] == user["id"]
    me = (await client.get("/api/v1/users/me", headers=user["headers"])).json()
    assert (me["role"], me["is_active"]) == ("creator", True)


async def test_signup_role_viewer_makes_viewers_who_read_but_cannot_publish(
    make_client: Any,
) -> None:
    async with make_client(signup_role="viewer") as client:
        viewer = await authed_user(client)
        assert viewer["role"] == "viewer"
        response = await client.post(
            "/api/v1/content", json=content_body(), headers=viewer["headers"]
        )
        assert_problem(response, 403, "forbidden")
        assert (await client.get("/api/v1/content")).json()["items"] == []
        assert (await client.get("/api/v1/users/me", headers=viewer["headers"])).status_code == 200


async def test_an_admin_changes_a_role_and_gets_the_private_profile(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_user(client)
    user = await authed_user(client, phone_number="+2348000000011")
    response = await _administer(client, admin, user, {"role": "viewer"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "id": user["id"],
        "name": user["name"],
        "email": user["email"],
        "display_name": user["display_name"],
        "phone_number": "+2348000000011",
        "country": None,
        "state": None,
        "role": "viewer",
        "is_active": True,
        "created_at": user["created_at"],
        "content_count": 0,
        "follower_count": 0,
        "following_count": 0,
    }
    assert (await client.get("/api/v1/users/me", headers=user["headers"])).json() == body


async def test_a_role_change_takes_effect_with_the_tokens_already_held(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_user(client)
    user = await authed_user(client)
    await publish(client, user)
    assert (await _administer(client, admin, user, {"role": "viewer"})).status_code == 200
    refused = await client.post("/api/v1/content", json=content_body(), headers=user["headers"])
    assert_problem(refused, 403, "forbidden")
    assert (await _administer(client, admin, user, {"role": "creator"})).status_code == 200
    assert (await publish(client, user))["author"]["id"] == user["id"]


async def test_a_new_admin_may_moderate_with_the_token_they_hold(client: httpx.AsyncClient) -> None:
    admin = await admin_user(client)
    author, moderator = await authed_user(client), await authed_user(client)
    item = await publish(client, author)
    url = f"/api/v1/content/{item['id']}"
    assert_problem(
        await client.patch(url, json={"title": "Moderated"}, headers=moderator["headers"]),
        403,
        "forbidden",
    )
    assert (await _administer(client, admin, moderator, {"role": "admin"})).status_code == 200
    edited = await client.patch(url, json={"title": "Moderated"}, headers=moderator["headers"])
    assert edited.status_code == 200
    assert edited.json()["author"]["id"] == author["id"]
    # and may now manage users too
    assert (await _administer(client, moderator, author, {"role": "viewer"})).status_code == 200
    # demoted again, the same token moderates no more
    assert (await _administer(client, admin, moderator, {"role": "creator"})).status_code == 200
    deleted = await client.delete(url, headers=moderator["headers"])
    assert_problem(deleted, 403, "forbidden")


async def test_deactivation_refuses_login_and_every_token(client: httpx.AsyncClient) -> None:
    admin = await admin_user(client)
    user = await authed_user(client)
    response = await _administer(client, admin, user, {"is_active": False})
    assert response.status_code == 200
    assert response.json()["is_active"] is False

    login = {"email": user["email"], "password": user["password"]}
    assert_problem(await client.post("/api/v1/auth/login", json=login), 403, "account_disabled")
    wrong = {"email": user["email"], "password": "not the password"}
    assert_problem(await client.post("/api/v1/auth/login", json=wrong), 401, "invalid_credentials")
    form = {"username": user["email"], "password": user["password"]}
    assert_problem(await client.post("/api/v1/auth/token", data=form), 403, "account_disabled")
    assert_problem(
        await client.get("/api/v1/users/me", headers=user["headers"]), 401, "invalid_token"
    )
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user["tokens"]["refresh_token"]}
    )
    assert_problem(refreshed, 401, "invalid_token")
    # the public profile stays (content stays published); the private one says so to admins
    assert (await client.get(f"/api/v1/users/{user['id']}")).status_code == 200


async def test_reactivation_allows_login_again_but_not_the_old_tokens(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_user(client)
    user = await authed_user(client)
    await _administer(client, admin, user, {"is_active": False})
    response = await _administer(client, admin, user, {"is_active": True})
    assert response.status_code == 200
    assert response.json()["is_active"] is True
    assert_problem(
        await client.get("/api/v1/users/me", headers=user["headers"]), 401, "invalid_token"
    )
    fresh = await log_in(client, user)
    me = await client.get("/api/v1/users/me", headers=bearer(fresh["access_token"]))
    assert me.json()["is_active"] is True


async def test_role_and_state_in_one_request(client: httpx.AsyncClient) -> None:
    admin = await admin_user(client)
    user = await authed_user(client)
    body = (await _administer(client, admin, user, {"role": "admin", "is_active": False})).json()
    assert (body["role"], body["is_active"]) == ("admin", False)


async def test_an_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    admin = await admin_user(client)
    response = await client.patch(
        f"/api/v1/admin/users/{uuid.uuid4()}", json={"role": "viewer"}, headers=admin["headers"]
    )
    assert_problem(response, 404, "user_not_found")


async def test_the_body_is_validated(client: httpx.AsyncClient) -> None:
    admin = await admin_user(client)
    user = await sign_up(client)
    for body in ({}, {"role": "superuser"}, {"role": None}, {"is_active": None}, {"name": "x"}):
        response = await _administer(client, admin, user, body)
        assert_problem(response, 422, "validation_error")
    malformed = await client.patch(
        "/api/v1/admin/users/not-a-uuid", json={"role": "viewer"}, headers=admin["headers"]
    )
    assert_problem(malformed, 422, "validation_error")


async def test_an_admin_may_send_their_own_unchanged_role_and_state(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_user(client)
    response = await _administer(client, admin, admin, {"role": "admin", "is_active": True})
    assert response.status_code == 200
    assert (response.json()["role"], response.json()["is_active"]) == ("admin", True)
