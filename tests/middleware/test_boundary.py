"""The command boundary: one commit point, the same path and failures with and without a key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from src.core.tables import idempotency_records, users, users_read
from src.slices.signup.commands import SignUp
from src.slices.signup.events import UserSignedUp
from tests.conftest import Backend
from tests.helpers import assert_problem, authed_user, content_body, signup_body

KEYED = pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])


async def rows(backend: Backend, table: Any, email: str | None = None) -> int:
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).select_from(table)
            if email is not None:
                query = query.where(table.c.email == email)
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


def headers(keyed: bool) -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())} if keyed else {}


@KEYED
async def test_a_success_commits_the_write_table_and_the_read_model(
    client: httpx.AsyncClient, backend: Backend, keyed: bool
) -> None:
    body = signup_body()
    response = await client.post("/api/v1/signup", json=body, headers=headers(keyed))
    assert response.status_code == 201
    assert await rows(backend, users, body["email"]) == 1
    assert await rows(backend, users_read, body["email"]) == 1
    assert await rows(backend, idempotency_records) == (1 if keyed else 0)


@KEYED
async def test_a_failing_projector_rolls_back_the_write_and_is_500(
    client: httpx.AsyncClient, backend: Backend, keyed: bool
) -> None:
    async def explode(connection: AsyncConnection, event: UserSignedUp) -> None:
        raise RuntimeError("projector bug")

    client.app.state.resources.dispatcher.subscribe(UserSignedUp, explode)  # type: ignore[attr-defined]
    body = signup_body()
    response = await client.post("/api/v1/signup", json=body, headers=headers(keyed))
    assert_problem(response, 500, "internal_error")
    assert await rows(backend, users, body["email"]) == 0
    assert await rows(backend, users_read, body["email"]) == 0
    assert await rows(backend, idempotency_records) == 0  # the key is free for a retry


@KEYED
async def test_a_database_failure_at_commit_is_503_and_nothing_is_written(
    client: httpx.AsyncClient, backend: Backend, keyed: bool
) -> None:
    async def database_gone(connection: AsyncConnection, event: UserSignedUp) -> None:
        raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))

    client.app.state.resources.dispatcher.subscribe(UserSignedUp, database_gone)  # type: ignore[attr-defined]
    body = signup_body()
    response = await client.post("/api/v1/signup", json=body, headers=headers(keyed))
    assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "1"
    assert await rows(backend, users, body["email"]) == 0
    assert await rows(backend, idempotency_records) == 0


@KEYED
async def test_a_crash_in_the_use_case_after_writing_rolls_back(
    make_client: Callable[..., Any],
    backend: Backend,
    keyed: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = SignUp._sign_up

    async def write_then_crash(self: SignUp, command: Any) -> Any:
        await original(self, command)
        raise RuntimeError("after the insert")

    monkeypatch.setattr(SignUp, "_sign_up", write_then_crash)
    body = signup_body()
    async with make_client() as client:
        response = await client.post("/api/v1/signup", json=body, headers=headers(keyed))
    assert_problem(response, 500, "internal_error")
    assert await rows(backend, users, body["email"]) == 0
    assert await rows(backend, idempotency_records) == 0


@KEYED
async def test_a_refusal_rolls_back_the_commands_writes(
    client: httpx.AsyncClient, backend: Backend, keyed: bool
) -> None:
    body = signup_body()
    assert (await client.post("/api/v1/signup", json=body)).status_code == 201
    again = signup_body(email=body["email"])
    response = await client.post("/api/v1/signup", json=again, headers=headers(keyed))
    assert_problem(response, 409, "email_taken")
    assert await rows(backend, users, body["email"]) == 1
    # a keyed refusal is stored (and replays); an unkeyed one leaves nothing
    assert await rows(backend, idempotency_records) == (1 if keyed else 0)


async def test_a_request_that_reaches_no_operation_stores_nothing(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    for method, path in (("POST", "/api/v1/nothing"), ("DELETE", "/api/v1/signup")):
        response = await client.request(
            method, path, json={}, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        assert response.status_code in (404, 405)
    assert await rows(backend, idempotency_records) == 0


async def test_anonymous_junk_with_fresh_keys_leaves_no_idempotency_rows(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    """A client once wrote 190 rows a second this way: every request a fresh key, none of them
    reaching an operation of the API."""
    junk = [
        ("POST", "/x"),
        ("POST", "/health"),
        ("PUT", "/"),
        ("DELETE", "/metrics"),
        ("PATCH", "/docs"),
        ("POST", f"/api/v1/content/{uuid.uuid4()}"),
        ("PUT", "/api/v1/signup"),
        ("POST", "/api/v1/signup/"),
    ]
    for _ in range(25):
        for method, path in junk:
            response = await client.request(
                method, path, content=b"{}", headers={"Idempotency-Key": str(uuid.uuid4())}
            )
            assert response.status_code in (404, 405), (method, path)
    assert await rows(backend, idempotency_records) == 0


async def test_an_ended_sessions_token_gets_no_replay(client: httpx.AsyncClient) -> None:
    """A stolen token whose session ended cannot fetch a stored answer by replaying the key."""
    author = await authed_user(client)
    keyed = {**author["headers"], "Idempotency-Key": "before-logout"}
    body = content_body()
    assert (await client.post("/api/v1/content", json=body, headers=keyed)).status_code == 201
    logout = {"refresh_token": author["tokens"]["refresh_token"]}
    assert (await client.post("/api/v1/auth/logout", json=logout)).status_code == 204
    replay = await client.post("/api/v1/content", json=body, headers=keyed)
    assert_problem(replay, 401, "invalid_token")
    assert "idempotent-replayed" not in replay.headers
