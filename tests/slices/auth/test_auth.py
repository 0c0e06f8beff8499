"""Auth from the user's and from the attacker's side."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable

import httpx
import orjson
import pytest
from jose import jwt

from src.core.security import TokenService
from tests.conftest import BASE_SETTINGS
from tests.helpers import assert_problem, authed_user, bearer, log_in, sign_up

SECRET = BASE_SETTINGS["jwt_secret"]


async def test_login_returns_a_token_pair(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": user["password"]}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1800
    assert response.headers["cache-control"] == "no-store"
    claims = jwt.get_unverified_claims(body["access_token"])
    assert set(claims) == {"sub", "exp", "iat", "jti", "sid", "type"}
    assert claims["sub"] == user["id"]
    assert claims["type"] == "access"
    refresh_claims = jwt.get_unverified_claims(body["refresh_token"])
    assert refresh_claims["type"] == "refresh"
    assert refresh_claims["sid"] == claims["sid"]  # one session, both tokens
    assert uuid.UUID(claims["sid"])
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user["email"].upper(), "password": user["password"]}
    )
    assert response.status_code == 200


async def test_wrong_password_and_unknown_email_get_the_same_401(
    client: httpx.AsyncClient,
) -> None:
    user = await sign_up(client)
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": "not the password"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever123"}
    )
    for response in (wrong, unknown):
        assert_problem(response, 401, "invalid_credentials")
        assert response.headers["www-authenticate"] == "Bearer"
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_password_over_72_bytes_at_login_is_a_plain_401(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    response = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": user["password"] + "x" * 80}
    )
    assert_problem(response, 401, "invalid_credentials")


async def test_oauth2_password_form_gives_a_token(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    response = await client.post(
        "/api/v1/auth/token", data={"username": user["email"], "password": user["password"]}
    )
    assert response.status_code == 200
    me = await client.get("/api/v1/users/me", headers=bearer(response.json()["access_token"]))
    assert me.status_code == 200


async def test_refresh_gives_a_new_working_pair(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    tokens = await log_in(client, user)
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 200
    fresh = response.json()
    assert fresh["access_token"] != tokens["access_token"]
    me = await client.get("/api/v1/users/me", headers=bearer(fresh["access_token"]))
    assert me.json()["id"] == user["id"]


async def test_me_returns_the_private_profile(client: httpx.AsyncClient) -> None:
    user = await authed_user(client, phone_number="+2348000000001")
    response = await client.get("/api/v1/users/me", headers=user["headers"])
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == user["email"]
    assert body["phone_number"] == "+2348000000001"
    assert body["content_count"] == 0
    assert "password_hash" not in body


async def test_me_without_token_is_401_not_authenticated(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/me")
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def _forge(claims: dict[str, object], *, secret: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def _unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _claims(user_id: str, session_id: str, **overrides: object) -> dict[str, object]:
    """The claims of a genuine access token of session `session_id`, then `overrides`
    (`None` drops a claim)."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "sid": session_id,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _unknown() -> str:
    return str(uuid.uuid4())


# Each forgery differs from a genuine token of the caller's live session in one respect only
# (see the control test below).
BAD_TOKENS: dict[str, Callable[[str, str], str]] = {
    "alg-none": lambda uid, sid: _unsigned(_claims(uid, sid)),
    "wrong-key": lambda uid, sid: _forge(_claims(uid, sid), secret="another-secret" * 4),
    "other-hmac-alg": lambda uid, sid: _forge(_claims(uid, sid), alg="HS512"),
    "expired": lambda uid, sid: _forge(_claims(uid, sid, exp=int(time.time()) - 120)),
    "refresh-as-access": lambda uid, sid: _forge(_claims(uid, sid, type="refresh")),
    "future-iat": lambda uid, sid: _forge(_claims(uid, sid, iat=int(time.time()) + 86400)),
    "missing-sub": lambda uid, sid: _forge(_claims(uid, sid, sub=None)),
    "garbage-sub": lambda uid, sid: _forge(_claims(uid, sid, sub="not-a-uuid")),
    "missing-jti": lambda uid, sid: _forge(_claims(uid, sid, jti=None)),
    "missing-type": lambda uid, sid: _forge(_claims(uid, sid, type=None)),
    "missing-sid": lambda uid, sid: _forge(_claims(uid, sid, sid=None)),
    "garbage-sid": lambda uid, sid: _forge(_claims(uid, sid, sid="not-a-uuid")),
    "unknown-session": lambda uid, sid: _forge(_claims(uid, _unknown())),
    "another-users-subject": lambda uid, sid: _forge(_claims(_unknown(), sid)),
    "garbage": lambda uid, sid: "not.a.jwt",
}


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=list(BAD_TOKENS))
async def test_bad_access_tokens_are_401_invalid_token(
    client: httpx.AsyncClient, make_token: Callable[[str, str], str]
) -> None:
    user = await authed_user(client)
    token = make_token(user["id"], user["sid"])
    response = await client.get("/api/v1/users/me", headers=bearer(token))
    problem = assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == "Bearer"
    assert token not in response.text
    assert problem["detail"] == "The token is invalid or has expired."


async def test_a_genuine_token_still_works(client: httpx.AsyncClient) -> None:
    """The control for the test above: the forger's template, signed with our key, is
    accepted; so is a token our own service issues for the live session."""
    user = await authed_user(client)
    forged = _forge(_claims(user["id"], user["sid"]))
    assert (await client.get("/api/v1/users/me", headers=bearer(forged))).status_code == 200
    issued = TokenService(SECRET, 600, 600).issue(
        uuid.UUID(user["id"]), uuid.UUID(user["sid"]), "access"
    )
    assert (await client.get("/api/v1/users/me", headers=bearer(issued))).status_code == 200


async def test_access_token_is_refused_by_refresh(client: httpx.AsyncClient) -> None:
    user = await sign_up(client)
    tokens = await log_in(client, user)
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]}
    )
    assert_problem(response, 401, "invalid_token")


async def test_refresh_for_a_user_that_does_not_exist_is_401(client: httpx.AsyncClient) -> None:
    token = TokenService(SECRET, 600, 600).issue(uuid.uuid4(), uuid.uuid4(), "refresh")
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    assert_problem(response, 401, "invalid_token")
