"""Idempotency-Key: replays are byte-identical, nothing executes twice, keys are per caller."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from src.core.tables import contents, idempotency_records, users
from tests.conftest import Backend
from tests.helpers import assert_problem, authed_user, content_body, signup_body


def keyed(key: str, **headers: str) -> dict[str, str]:
    return {"Idempotency-Key": key, **headers}


async def count_rows(backend: Backend, table: Any, *where: Any) -> int:
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).select_from(table)
            for clause in where:
                query = query.where(clause)
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def test_replay_is_byte_identical_and_marked(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    body = signup_body()
    key = str(uuid.uuid4())
    first = await client.post("/api/v1/signup", json=body, headers=keyed(key))
    second = await client.post("/api/v1/signup", json=body, headers=keyed(key))
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count_rows(backend, users, users.c.email == body["email"]) == 1


async def test_a_replayed_error_is_replayed_too(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    url = f"/api/v1/content/{uuid.uuid4()}"
    headers = keyed("patch-missing", **author["headers"])
    first = await client.patch(url, json={"title": "Nope nope"}, headers=headers)
    second = await client.patch(url, json={"title": "Nope nope"}, headers=headers)
    assert first.status_code == second.status_code == 404
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"


async def test_same_key_with_another_body_is_422_key_reused(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/signup", json=signup_body(), headers=keyed("k-1"))
    response = await client.post("/api/v1/signup", json=signup_body(), headers=keyed("k-1"))
    assert_problem(response, 422, "idempotency_key_reused")


async def test_same_key_on_another_path_is_422_key_reused(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    made = [
        (
            await client.post("/api/v1/content", json=content_body(), headers=author["headers"])
        ).json()
        for _ in range(2)
    ]
    headers = keyed("edit-1", **author["headers"])
    body = {"title": "Same body"}
    assert (
        await client.patch(f"/api/v1/content/{made[0]['id']}", json=body, headers=headers)
    ).status_code == 200
    response = await client.patch(f"/api/v1/content/{made[1]['id']}", json=body, headers=headers)
    assert_problem(response, 422, "idempotency_key_reused")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"x" * 256,
        b"has space",
        b"\xc3\xa9t\xc3\xa9",
        b'"unterminated',
        b'"bad\\x"',
        b'"in"side"',
    ],
)
async def test_invalid_keys_are_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        "/api/v1/signup", json=signup_body(), headers={"Idempotency-Key": raw}
    )
    assert_problem(response, 400, "invalid_idempotency_key")
    assert raw.decode("latin-1") not in response.text or not raw.strip()


async def test_structured_field_string_equals_the_bare_key(client: httpx.AsyncClient) -> None:
    body = signup_body()
    first = await client.post("/api/v1/signup", json=body, headers=keyed("abc-123"))
    second = await client.post("/api/v1/signup", json=body, headers=keyed('"abc-123"'))
    assert second.headers.get("idempotent-replayed") == "true"
    assert second.content == first.content


async def test_fifty_concurrent_requests_with_one_key_execute_once(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    author = await authed_user(client)
    headers = keyed("burst", **author["headers"])
    body = content_body(title="Exactly once")
    responses = await asyncio.gather(
        *(client.post("/api/v1/content", json=body, headers=headers) for _ in range(50))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert len({r.content for r in created}) == 1
    assert sum(1 for r in created if "idempotent-replayed" not in r.headers) == 1
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "idempotency_request_in_progress"
            assert response.headers["retry-after"] == "1"
    assert await count_rows(backend, contents, contents.c.title == "Exactly once") == 1


async def test_callers_cannot_see_each_others_stored_responses(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    alice, bob = await authed_user(client), await authed_user(client)
    body = content_body(title="Same key, two people")
    first = await client.post(
        "/api/v1/content", json=body, headers=keyed("shared", **alice["headers"])
    )
    second = await client.post(
        "/api/v1/content", json=body, headers=keyed("shared", **bob["headers"])
    )
    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert second.json()["author"]["id"] == bob["id"]
    assert first.json()["id"] != second.json()["id"]


async def test_a_fixed_body_after_a_422_goes_through_with_the_same_key(
    client: httpx.AsyncClient,
) -> None:
    invalid = await client.post(
        "/api/v1/signup", json=signup_body(password="short"), headers=keyed("fix-me")
    )
    assert_problem(invalid, 422, "validation_error")
    fixed = await client.post("/api/v1/signup", json=signup_body(), headers=keyed("fix-me"))
    assert fixed.status_code == 201
    assert "idempotent-replayed" not in fixed.headers


async def test_a_401_is_not_stored(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    body = content_body()
    anonymous = await client.post("/api/v1/content", json=body, headers=keyed("later"))
    assert_problem(anonymous, 401, "not_authenticated")
    # the same anonymous caller, now with a token, is a different scope anyway; and the
    # anonymous key itself was released:
    again = await client.post("/api/v1/content", json=body, headers=keyed("later"))
    assert_problem(again, 401, "not_authenticated")
    assert "idempotent-replayed" not in again.headers
    made = await client.post(
        "/api/v1/content", json=body, headers=keyed("later", **author["headers"])
    )
    assert made.status_code == 201


async def test_a_5xx_releases_the_key(client: httpx.AsyncClient, backend: Backend) -> None:
    app: FastAPI = client.app  # type: ignore[attr-defined]
    calls = 0

    async def flaky() -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("transient failure")
        return {"calls": calls}

    app.router.add_api_route("/api/v1/test-only/flaky", flaky, methods=["POST"])
    first = await client.post("/api/v1/test-only/flaky", headers=keyed("retry-5xx"))
    assert_problem(first, 500, "internal_error")
    second = await client.post("/api/v1/test-only/flaky", headers=keyed("retry-5xx"))
    assert second.status_code == 200
    assert second.json() == {"calls": 2}
    third = await client.post("/api/v1/test-only/flaky", headers=keyed("retry-5xx"))
    assert third.headers["idempotent-replayed"] == "true"
    assert calls == 2


async def test_an_abandoned_lock_is_taken_over_after_the_lock_period(
    make_client: Any, backend: Backend
) -> None:
    # A lock period long enough that a loaded machine cannot outlast it between two requests;
    # the takeover is shown by dating the lock before the period instead of by waiting.
    async with make_client(idempotency_lock_seconds=30) as client:
        body = signup_body()
        first = await client.post("/api/v1/signup", json=body, headers=keyed("abandoned"))
        assert first.status_code == 201
        # simulate a process that claimed a key and died before committing
        await _set_record(
            backend,
            "abandoned",
            status="in_progress",
            lock_token="dead",
            locked_at=dt.datetime.now(dt.UTC),
            response_status=None,
        )
        busy = await client.post("/api/v1/signup", json=body, headers=keyed("abandoned"))
        assert_problem(busy, 409, "idempotency_request_in_progress")
        await _set_record(
            backend, "abandoned", locked_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=31)
        )
        retried = await client.post("/api/v1/signup", json=body, headers=keyed("abandoned"))
        # the user exists (the first attempt committed), so re-executing answers 409 email_taken
        assert_problem(retried, 409, "email_taken")


async def test_expired_keys_are_forgotten(make_client: Any, backend: Backend) -> None:
    async with make_client() as client:
        first = await client.post("/api/v1/signup", json=signup_body(), headers=keyed("old"))
        assert first.status_code == 201
        await _set_record(
            backend, "old", expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        )
        fresh = await client.post("/api/v1/signup", json=signup_body(), headers=keyed("old"))
        assert fresh.status_code == 201
        assert "idempotent-replayed" not in fresh.headers


async def test_outcomes_are_counted(client: httpx.AsyncClient) -> None:
    body = signup_body()
    await client.post("/api/v1/signup", json=body, headers=keyed("m-1"))
    await client.post("/api/v1/signup", json=body, headers=keyed("m-1"))
    await client.post("/api/v1/signup", json=signup_body(), headers=keyed("m-1"))
    await client.post("/api/v1/signup", json={}, headers=keyed("m-2"))
    metrics = (await client.get("/metrics")).text
    for outcome in ("stored", "replayed", "mismatch", "released"):
        assert f'idempotency_requests_total{{outcome="{outcome}"}} 1.0' in metrics


async def _set_record(backend: Backend, key: str, **values: Any) -> None:
    engine = create_async_engine(backend.database_url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(
                update(idempotency_records).where(idempotency_records.c.key == key).values(**values)
            )
            assert result.rowcount == 1
    finally:
        await engine.dispose()


async def test_purge_removes_only_expired_records(
    client: httpx.AsyncClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from src.cli import main as cli

    await client.post("/api/v1/signup", json=signup_body(), headers=keyed("keep"))
    await client.post("/api/v1/signup", json=signup_body(), headers=keyed("drop"))
    await _set_record(backend, "drop", expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    assert await asyncio.to_thread(cli, ["purge-idempotency"]) == 0
    keys = await count_rows(backend, idempotency_records)
    assert keys == 1
    assert await count_rows(backend, idempotency_records, idempotency_records.c.key == "keep") == 1


async def test_a_keyed_request_is_not_told_its_client_disconnected(
    client: httpx.AsyncClient,
) -> None:
    app: FastAPI = client.app  # type: ignore[attr-defined]

    async def echo(request: Request) -> dict[str, object]:
        body = await request.json()
        return {"body": body, "disconnected": await request.is_disconnected()}

    app.router.add_api_route("/api/v1/test-only/echo", echo, methods=["POST"])
    response = await client.post("/api/v1/test-only/echo", json={"a": 1}, headers=keyed("echo"))
    assert response.json() == {"body": {"a": 1}, "disconnected": False}
