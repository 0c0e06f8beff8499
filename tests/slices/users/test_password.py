"""`POST /api/v1/users/me/password`: the new password logs in, the old one and every token
issued before do not."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, authed_user, bearer, log_in

NEW = "a brand new secret"
PATH = "/api/v1/users/me/password"


async def _change(client: httpx.AsyncClient, user: dict[str, Any], current: str, new: str) -> Any:
    return await client.post(
        PATH, json={"current_password": current, "new_password": new}, headers=user["headers"]
    )


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def test_the_new_password_logs_in_and_the_old_one_no_longer(
    client: httpx.AsyncClient,
) -> None:
    user = await authed_user(client)
    response = await _change(client, user, user["password"], NEW)
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(
        await _login(client, user["email"], user["password"]), 401, "invalid_credentials"
    )
    fresh = await _login(client, user["email"], NEW)
    assert fresh.status_code == 200
    me = await client.get("/api/v1/users/me", headers=bearer(fresh.json()["access_token"]))
    assert me.status_code == 200


async def test_every_token_issued_before_is_refused(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    other_session = await log_in(client, user)
    assert (await _change(client, user, user["password"], NEW)).status_code == 204
    for tokens in (user["tokens"], other_session):
        me = await client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))
        assert_problem(me, 401, "invalid_token")
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert_problem(refreshed, 401, "invalid_token")


async def test_a_wrong_current_password_is_403_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    user = await authed_user(client)
    response = await _change(client, user, "not my password", NEW)
    assert_problem(response, 403, "wrong_password")
    assert (await client.get("/api/v1/users/me", headers=user["headers"])).status_code == 200
    assert (await _login(client, user["email"], user["password"])).status_code == 200
    assert_problem(await _login(client, user["email"], NEW), 401, "invalid_credentials")


async def test_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(PATH, json={"current_password": "x", "new_password": NEW})
    assert_problem(response, 401, "not_authenticated")


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"current_password": "whatever", "new_password": "short"}, "/new_password"),
        ({"current_password": "whatever", "new_password": "é" * 40}, "/new_password"),
        ({"current_password": "whatever", "new_password": "nul\x00inside!"}, "/new_password"),
        ({"current_password": "", "new_password": NEW}, "/current_password"),
        ({"new_password": NEW}, "/current_password"),
        ({"current_password": "whatever", "new_password": NEW, "email": "x@y.z"}, "/email"),
    ],
)
async def test_the_new_password_follows_the_signup_rules(
    client: httpx.AsyncClient, body: dict[str, str], pointer: str
) -> None:
    user = await authed_user(client)
    response = await client.post(PATH, json=body, headers=user["headers"])
    problem = assert_problem(response, 422, "validation_error")
    assert [error["pointer"] for error in problem["errors"]] == [pointer]
    assert (await client.get("/api/v1/users/me", headers=user["headers"])).status_code == 200
