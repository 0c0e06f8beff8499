"""Sessions: login starts one, refresh rotates its refresh token, logout ends it.

The attacker's side of the same rules (replayed refresh tokens, ended sessions' access
tokens, someone else's refresh token) is in tests/security/test_account_attacks.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from src.core.security import TokenService
from src.core.tables import sessions
from tests.conftest import BASE_SETTINGS, Backend
from tests.helpers import assert_problem, authed_user, bearer, log_in, session_of, sign_up

SECRET = BASE_SETTINGS["jwt_secret"]


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def _log_out(client: httpx.AsyncClient, token: str, **headers: str) -> httpx.Response:
    return await client.post("/api/v1/auth/logout", json={"refresh_token": token}, headers=headers)


async def _me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/api/v1/users/me", headers=bearer(access_token))


async def _session_rows(backend: Backend, user_id: str) -> list[Any]:
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.connect() as connection:
            query = select(sessions).where(sessions.c.user_id == uuid.UUID(user_id))
            return list((await connection.execute(query)).all())
    finally:
        await engine.dispose()


async def test_each_login_starts_its_own_session(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    user = await sign_up(client)
    first, second = await log_in(client, user), await log_in(client, user)
    assert session_of(first["access_token"]) == session_of(first["refresh_token"])
    assert session_of(first["access_token"]) != session_of(second["access_token"])
    rows = await _session_rows(backend, user["id"])
    assert {str(row.id) for row in rows} == {
        session_of(first["access_token"]),
        session_of(second["access_token"]),
    }
    assert all(row.revoked_at is None for row in rows)


async def test_refresh_rotates_and_keeps_the_session(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    response = await _refresh(client, user["tokens"]["refresh_token"])
    assert response.status_code == 200, response.text
    fresh = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert fresh["refresh_token"] != user["tokens"]["refresh_token"]
    assert session_of(fresh["access_token"]) == user["sid"]
    assert session_of(fresh["refresh_token"]) == user["sid"]
    assert (await _me(client, fresh["access_token"])).status_code == 200
    # the access token issued before the rotation belongs to the same live session
    assert (await _me(client, user["tokens"]["access_token"])).status_code == 200
    # and the new refresh token rotates again
    again = await _refresh(client, fresh["refresh_token"])
    assert again.status_code == 200, again.text


async def test_a_spent_refresh_token_is_refused_and_ends_the_session(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    user = await authed_user(client)
    spent = user["tokens"]["refresh_token"]
    fresh = (await _refresh(client, spent)).json()

    replay = await _refresh(client, spent)
    assert_problem(replay, 401, "invalid_token")
    assert replay.headers["www-authenticate"] == "Bearer"
    # the whole session is over: its newest refresh and every access token are refused
    assert_problem(await _refresh(client, fresh["refresh_token"]), 401, "invalid_token")
    assert_problem(await _me(client, fresh["access_token"]), 401, "invalid_token")
    assert_problem(await _me(client, user["tokens"]["access_token"]), 401, "invalid_token")
    [row] = await _session_rows(backend, user["id"])
    assert row.revoked_reason == "refresh_reused"
    # a new login starts a new session that works
    assert (await _me(client, (await log_in(client, user))["access_token"])).status_code == 200


async def test_two_concurrent_refreshes_with_one_token_exactly_one_succeeds(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        user = await authed_user(client)
        token = user["tokens"]["refresh_token"]
        answers = await asyncio.gather(*(_refresh(client, token) for _ in range(2)))
        statuses = sorted(response.status_code for response in answers)
        assert statuses == [200, 401], [response.text for response in answers]
        loser = next(response for response in answers if response.status_code == 401)
        assert_problem(loser, 401, "invalid_token")


async def test_logout_ends_the_session_and_answers_204_again(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    other = await log_in(client, user)  # a second session of the same account
    response = await _log_out(client, user["tokens"]["refresh_token"])
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await _me(client, user["tokens"]["access_token"]), 401, "invalid_token")
    assert_problem(await _refresh(client, user["tokens"]["refresh_token"]), 401, "invalid_token")
    # already over: still 204
    assert (await _log_out(client, user["tokens"]["refresh_token"])).status_code == 204
    # the account's other session is untouched
    assert (await _me(client, other["access_token"])).status_code == 200
    assert (await _refresh(client, other["refresh_token"])).status_code == 200


async def test_logout_works_with_the_accounts_own_access_token_or_none(
    client: httpx.AsyncClient,
) -> None:
    user = await authed_user(client)
    with_bearer = await _log_out(
        client,
        user["tokens"]["refresh_token"],
        Authorization=f"Bearer {user['tokens']['access_token']}",
    )
    assert with_bearer.status_code == 204
    later = await log_in(client, user)
    stale = {"Authorization": f"Bearer {user['tokens']['access_token']}"}  # session over
    assert (await _log_out(client, later["refresh_token"], **stale)).status_code == 204
    assert_problem(await _me(client, later["access_token"]), 401, "invalid_token")


async def test_logout_after_a_password_change_is_204(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    changed = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": user["password"], "new_password": "a brand new secret"},
        headers=user["headers"],
    )
    assert changed.status_code == 204
    assert (await _log_out(client, user["tokens"]["refresh_token"])).status_code == 204


async def test_logout_with_an_expired_refresh_token_is_204_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    user = await authed_user(client)
    expired = TokenService(SECRET, 600, 600).issue(
        uuid.UUID(user["id"]),
        uuid.UUID(user["sid"]),
        "refresh",
        now=int(time.time()) - 7200,
    )
    assert (await _log_out(client, expired)).status_code == 204
    assert (await _me(client, user["tokens"]["access_token"])).status_code == 200


async def test_logout_refuses_what_is_not_a_refresh_token(client: httpx.AsyncClient) -> None:
    user = await authed_user(client)
    for token in ("not.a.jwt", user["tokens"]["access_token"]):
        assert_problem(await _log_out(client, token), 401, "invalid_token")
    assert (await _me(client, user["tokens"]["access_token"])).status_code == 200


async def test_logout_body_is_validated(client: httpx.AsyncClient) -> None:
    for body in ({}, {"refresh_token": ""}, {"refresh_token": "x", "extra": 1}):
        response = await client.post("/api/v1/auth/logout", json=body)
        assert_problem(response, 422, "validation_error")


async def test_a_session_past_its_expiry_refreshes_no_more(
    make_client: Any,
) -> None:
    async with make_client(refresh_token_ttl_seconds=1) as client:
        user = await authed_user(client)
        await asyncio.sleep(1.2)
        # the token itself is within the decoder's clock-skew leeway; the session is over
        response = await _refresh(client, user["tokens"]["refresh_token"])
    assert_problem(response, 401, "invalid_token")
