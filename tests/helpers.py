"""Small helpers shared by API tests."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
from jose import jwt

_sequence = itertools.count(1)


def signup_body(**overrides: Any) -> dict[str, Any]:
    """A valid signup body with an e-mail unique to this call."""
    n = next(_sequence)
    body: dict[str, Any] = {
        "name": f"Ada Lovelace {n}",
        "email": f"ada.{n}.{uuid.uuid4().hex[:8]}@example.com",
        "password": "correct horse battery",
    }
    body.update(overrides)
    return body


async def sign_up(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = signup_body(**overrides)
    response = await client.post("/api/v1/signup", json=body)
    assert response.status_code == 201, response.text
    return {**response.json(), "password": body["password"]}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == "about:blank"
    assert problem["request_id"] == response.headers["x-request-id"]
    assert problem["instance"] == response.request.url.path
    return problem  # type: ignore[no-any-return]


async def log_in(client: httpx.AsyncClient, user: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": user["email"], "password": user["password"]}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def authed_user(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """A signed-up user with `headers` carrying a bearer access token, and `sid` the id of
    the session that login started."""
    user = await sign_up(client, **overrides)
    tokens = await log_in(client, user)
    return {
        **user,
        "tokens": tokens,
        "headers": bearer(tokens["access_token"]),
        "sid": session_of(tokens["access_token"]),
    }


def session_of(token: str) -> str:
    """The session id (`sid`) a token of ours carries."""
    return str(jwt.get_unverified_claims(token)["sid"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def content_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": f"A title {next(_sequence)}",
        "content": "Some content that is long enough to be accepted.",
    }
    body.update(overrides)
    return body


async def publish(
    client: httpx.AsyncClient, author: dict[str, Any], **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/content", json=content_body(**overrides), headers=author["headers"]
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def publish_many(client: httpx.AsyncClient, author: dict[str, Any], count: int) -> list[str]:
    """`count` items by `author`, created by the content slice's own use case (its writes and
    projections) in one transaction: the HTTP path, minus a request per item."""
    from src.core.db.uow import command_transaction
    from src.core.identity import Principal
    from src.slices.content.commands import CreateContent, CreateContentCommand

    resources = client.app.state.resources  # type: ignore[attr-defined]
    actor = Principal(uuid.UUID(author["id"]), uuid.UUID(author["sid"]), "creator")
    async with command_transaction(resources.unit_of_work()) as uow:
        use_case = CreateContent(uow, resources.cache)
        created = [
            await use_case.execute(CreateContentCommand(actor, body["title"], body["content"]))
            for body in (content_body() for _ in range(count))
        ]
    return [str(item.id) for item in created]


async def promote_to_admin(client: httpx.AsyncClient, user: dict[str, Any]) -> None:
    """Make `user` an admin the way `inkwell promote-admin` does, on the client's app."""
    from src.core.db.uow import command_transaction
    from src.slices.users.commands import PromoteAdmin, PromoteAdminCommand

    resources = client.app.state.resources  # type: ignore[attr-defined]
    async with command_transaction(resources.unit_of_work()) as uow:
        await PromoteAdmin(uow).execute(PromoteAdminCommand(user["email"]))


async def admin_user(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """A signed-up, logged-in admin (promoted before logging in)."""
    user = await sign_up(client, **overrides)
    await promote_to_admin(client, user)
    tokens = await log_in(client, user)
    return {
        **user,
        "role": "admin",
        "tokens": tokens,
        "headers": bearer(tokens["access_token"]),
        "sid": session_of(tokens["access_token"]),
    }


async def follow(client: httpx.AsyncClient, reader: dict[str, Any], author: dict[str, Any]) -> None:
    """`reader` follows `author` (204)."""
    response = await client.put(f"/api/v1/users/{author['id']}/follow", headers=reader["headers"])
    assert response.status_code == 204, response.text


async def read_feed(
    client: httpx.AsyncClient, reader: dict[str, Any], **params: Any
) -> dict[str, Any]:
    """`reader`'s feed page (200, JSON)."""
    response = await client.get("/api/v1/content/feed", params=params, headers=reader["headers"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()  # type: ignore[no-any-return]


def pool_checkouts(engine: Any) -> list[Any]:
    """The driver connections `engine`'s pool hands out, recorded as it does."""
    from sqlalchemy import event

    seen: list[Any] = []

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _checked_out(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        seen.append(dbapi_connection)

    return seen
