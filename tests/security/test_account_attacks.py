"""Every account rule from the attacker's side: each attempt is refused and changes nothing.

The controls — the same requests by someone the rule lets through — are in
tests/slices/users/test_roles_and_admin.py, tests/slices/auth/test_sessions.py and
tests/slices/users/test_password.py.
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
)


async def _me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/api/v1/users/me", headers=bearer(access_token))


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


async def _still_works(client: httpx.AsyncClient, tokens: dict[str, Any]) -> None:
    assert (await _me(client, tokens["access_token"])).status_code == 200
    assert (await _refresh(client, tokens["refresh_token"])).status_code == 200


async def _role_of(client: httpx.AsyncClient, user: dict[str, Any]) -> tuple[str, bool]:
    me = (await client.get("/api/v1/users/me", headers=user["headers"])).json()
    return me["role"], me["is_active"]


async def test_a_viewer_cannot_publish(client: httpx.AsyncClient) -> None:
    admin = await admin_user(client)
    viewer = await authed_user(client)
    demoted = await client.patch(
        f"/api/v1/admin/users/{viewer['id']}", json={"role": "viewer"}, headers=admin["headers"]
    )
    assert demoted.status_code == 200
    for headers in (viewer["headers"], {**viewer["headers"], "Idempotency-Key": "viewer-post"}):
        response = await client.post("/api/v1/content", json=content_body(), headers=headers)
        assert_problem(response, 403, "forbidden")
    assert (await client.get("/api/v1/content")).json()["items"] == []
    me = (await client.get("/api/v1/users/me", headers=viewer["headers"])).json()
    assert me["content_count"] == 0


async def test_an_author_demoted_to_viewer_cannot_change_their_content_but_may_delete_it(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_user(client)
    author = await authed_user(client)
    item = await publish(client, author)
    url = f"/api/v1/content/{item['id']}"
    demoted = await client.patch(
        f"/api/v1/admin/users/{author['id']}", json={"role": "viewer"}, headers=admin["headers"]
    )
    assert demoted.status_code == 200
    edit = await client.patch(url, json={"title": "Spam, now"}, headers=author["headers"])
    assert_problem(edit, 403, "forbidden")
    assert (await client.get(url)).json()["title"] == item["title"]
    assert (await client.delete(url, headers=author["headers"])).status_code == 204


async def test_a_non_admin_cannot_call_the_admin_endpoint(client: httpx.AsyncClient) -> None:
    creator = await authed_user(client)
    victim = await authed_user(client)
    bodies = ({"role": "admin"}, {"role": "viewer"}, {"is_active": False})
    for target in (creator, victim):  # promoting themselves, or acting on someone else
        for body in bodies:
            response = await client.patch(
                f"/api/v1/admin/users/{target['id']}", json=body, headers=creator["headers"]
            )
            assert_problem(response, 403, "forbidden")
    # a non-admin cannot probe ids either: an unknown id is the same 403, not a 404
    unknown = await client.patch(
        f"/api/v1/admin/users/{uuid.uuid4()}", json={"role": "viewer"}, headers=creator["headers"]
    )
    assert_problem(unknown, 403, "forbidden")
    anonymous = await client.patch(f"/api/v1/admin/users/{victim['id']}", json={"role": "viewer"})
    assert_problem(anonymous, 401, "not_authenticated")
    assert await _role_of(client, creator) == ("creator", True)
    assert await _role_of(client, victim) == ("creator", True)
    await _still_works(client, victim["tokens"])


async def test_an_admin_cannot_demote_or_deactivate_themselves(client: httpx.AsyncClient) -> None:
    admin = await admin_user(client)
    path = f"/api/v1/admin/users/{admin['id']}"
    for body in (
        {"role": "creator"},
        {"role": "viewer"},
        {"is_active": False},
        {"role": "admin", "is_active": False},
    ):
        response = await client.patch(path, json=body, headers=admin["headers"])
        assert_problem(response, 403, "forbidden")
    assert await _role_of(client, admin) == ("admin", True)


async def test_a_deactivated_users_old_tokens_are_refused(client: httpx.AsyncClient) -> None:
    admin = await admin_user(client)
    user = await authed_user(client)
    item = await publish(client, user)
    other_session = await log_in(client, user)
    response = await client.patch(
        f"/api/v1/admin/users/{user['id']}", json={"is_active": False}, headers=admin["headers"]
    )
    assert response.status_code == 200
    for tokens in (user["tokens"], other_session):
        headers = bearer(tokens["access_token"])
        attempts = [
            await client.get("/api/v1/users/me", headers=headers),
            await client.post("/api/v1/content", json=content_body(), headers=headers),
            await client.patch(
                f"/api/v1/content/{item['id']}", json={"title": "Defaced"}, headers=headers
            ),
            await client.patch("/api/v1/users/me", json={"name": "Still here"}, headers=headers),
            await _refresh(client, tokens["refresh_token"]),
        ]
        for attempt in attempts:
            assert_problem(attempt, 401, "invalid_token")
            assert attempt.headers["www-authenticate"] == "Bearer"
    assert (await client.get(f"/api/v1/content/{item['id']}")).json()["title"] == item["title"]


async def test_a_revoked_sessions_access_token_is_refused_on_the_next_request(
    client: httpx.AsyncClient,
) -> None:
    user = await authed_user(client)
    item = await publish(client, user)
    logout = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": user["tokens"]["refresh_token"]}
    )
    assert logout.status_code == 204
    headers = user["headers"]
    for attempt in (
        await client.get("/api/v1/users/me", headers=headers),
        await client.post("/api/v1/content", json=content_body(), headers=headers),
        await client.delete(f"/api/v1/content/{item['id']}", headers=headers),
        await client.post(
            "/api/v1/users/me/password",
            json={"current_password": user["password"], "new_password": "taken over!"},
            headers=headers,
        ),
    ):
        assert_problem(attempt, 401, "invalid_token")
    assert (await client.get(f"/api/v1/content/{item['id']}")).status_code == 200
    # the password was not changed through the ended session
    assert (await log_in(client, user))["access_token"]


async def test_a_spent_refresh_token_replayed_locks_the_thief_and_the_victim_out(
    client: httpx.AsyncClient,
) -> None:
    """The thief copied the refresh token; whoever exchanges it second ends the session."""
    victim = await authed_user(client)
    stolen = victim["tokens"]["refresh_token"]
    thiefs = (await _refresh(client, stolen)).json()  # the thief is first
    replay = await _refresh(client, stolen)  # the victim's app, holding the same token
    assert_problem(replay, 401, "invalid_token")
    assert_problem(await _me(client, thiefs["access_token"]), 401, "invalid_token")
    assert_problem(await _refresh(client, thiefs["refresh_token"]), 401, "invalid_token")
    # replaying again changes nothing and is still refused
    assert_problem(await _refresh(client, stolen), 401, "invalid_token")


async def test_tokens_from_before_a_password_change_are_refused(
    client: httpx.AsyncClient,
) -> None:
    victim = await authed_user(client)
    thief = await log_in(client, victim)  # a session the attacker started with the old password
    changed = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": victim["password"], "new_password": "only mine now"},
        headers=victim["headers"],
    )
    assert changed.status_code == 204
    for tokens in (thief, victim["tokens"]):
        assert_problem(await _me(client, tokens["access_token"]), 401, "invalid_token")
        assert_problem(await _refresh(client, tokens["refresh_token"]), 401, "invalid_token")
        logout = await client.post(
            "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
        )
        assert logout.status_code == 204  # over already
    old_password = {"email": victim["email"], "password": victim["password"]}
    assert_problem(
        await client.post("/api/v1/auth/login", json=old_password), 401, "invalid_credentials"
    )


async def test_logging_out_someone_elses_session_is_refused(client: httpx.AsyncClient) -> None:
    attacker, victim = await authed_user(client), await authed_user(client)
    response = await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": victim["tokens"]["refresh_token"]},
        headers=attacker["headers"],
    )
    assert_problem(response, 403, "forbidden")
    # the attacker's own refresh token ends only the attacker's session
    own = await client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": attacker["tokens"]["refresh_token"]},
        headers=attacker["headers"],
    )
    assert own.status_code == 204
    await _still_works(client, victim["tokens"])
    # an access token is not a refresh token, whoever presents it
    as_refresh = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": victim["tokens"]["access_token"]}
    )
    assert_problem(as_refresh, 401, "invalid_token")
    assert (await _me(client, victim["tokens"]["access_token"])).status_code == 200
