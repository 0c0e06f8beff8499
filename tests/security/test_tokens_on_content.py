"""Forged and stale JWTs on the content commands: 401 `invalid_token`, and nothing changes.

tests/slices/auth/test_auth.py tries the same tokens (and more) on `/users/me` and on
refresh; this proves the write routes refuse them too, before touching any row.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.helpers import authed_user, bearer, content_body, publish
from tests.slices.auth.test_auth import BAD_TOKENS

TOKENS = {
    name: BAD_TOKENS[name]
    for name in (
        "alg-none",
        "wrong-key",
        "refresh-as-access",
        "expired",
        "future-iat",
        "missing-sub",
        "missing-sid",
        "unknown-session",
        "another-users-subject",
    )
}


@pytest.mark.parametrize("make_token", TOKENS.values(), ids=list(TOKENS))
async def test_bad_tokens_cannot_create_change_or_delete_content(
    client: httpx.AsyncClient, make_token: Callable[[str, str], str]
) -> None:
    author = await authed_user(client)
    content = await publish(client, author)
    token = make_token(author["id"], author["sid"])
    path = f"/api/v1/content/{content['id']}"
    attempts = [
        await client.post("/api/v1/content", json=content_body(), headers=bearer(token)),
        await client.patch(path, json={"title": "Defaced"}, headers=bearer(token)),
        await client.delete(path, headers=bearer(token)),
    ]
    for response in attempts:
        assert response.status_code == 401, response.request.method
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_token"
        assert response.headers["www-authenticate"] == "Bearer"
        assert token not in response.text
    unchanged = await client.get(path)
    assert unchanged.json()["title"] == content["title"]
    listed = await client.get("/api/v1/content")
    assert [item["id"] for item in listed.json()["items"]] == [content["id"]]


async def test_the_authors_genuine_token_can_change_it(client: httpx.AsyncClient) -> None:
    """The control for the test above."""
    author = await authed_user(client)
    content = await publish(client, author)
    path = f"/api/v1/content/{content['id']}"
    response = await client.patch(path, json={"title": "Revised"}, headers=author["headers"])
    assert response.status_code == 200
