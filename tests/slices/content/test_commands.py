"""Content commands: create, edit, delete — ownership checked from the attacker's side."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from src.cli import main as cli
from tests.conftest import Backend
from tests.helpers import assert_problem, authed_user, content_body, log_in, publish


async def test_create_answers_201_with_the_caller_as_author(client: httpx.AsyncClient) -> None:
    author = await authed_user(client, display_name="The Author")
    response = await client.post(
        "/api/v1/content",
        json=content_body(title="Hello", image="https://img.example.com/a.png"),
        headers=author["headers"],
    )
    assert response.status_code == 201, response.text
    content = response.json()
    assert list(content) == [
        "id",
        "slug",
        "title",
        "content",
        "image",
        "tags",
        "status",
        "published_at",
        "author",
        "created_at",
        "updated_at",
    ]
    assert content["slug"] == "hello"
    assert content["tags"] == []
    assert content["status"] == "published"
    assert content["published_at"] == content["created_at"]
    assert content["author"] == {
        "id": author["id"],
        "name": author["name"],
        "display_name": "The Author",
    }
    assert content["image"] == "https://img.example.com/a.png"
    assert response.headers["location"] == f"/api/v1/content/{content['id']}"
    read = await client.get(response.headers["location"])
    assert read.json() == content


async def test_create_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/content", json=content_body())
    assert_problem(response, 401, "not_authenticated")


async def test_author_id_in_the_body_is_refused(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    response = await client.post(
        "/api/v1/content",
        json=content_body(author_id=str(uuid.uuid4())),
        headers=author["headers"],
    )
    assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "ab"),
        ("title", "t" * 201),
        ("content", "too short"),
        ("content", "c" * 50_001),
        ("image", "ftp://example.com/x.png"),
        ("image", "javascript:alert(1)"),
        ("image", "https://" + "a" * 2050 + ".com"),
        ("title", "bad\u0000title"),
    ],
)
async def test_invalid_content_is_422(client: httpx.AsyncClient, field: str, value: str) -> None:
    author = await authed_user(client)
    response = await client.post(
        "/api/v1/content", json=content_body(**{field: value}), headers=author["headers"]
    )
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["pointer"] == f"/{field}"


async def test_author_edits_any_field_and_the_next_read_sees_it(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    content = await publish(client, author, image="https://example.com/1.png")
    await client.get(f"/api/v1/content/{content['id']}")  # warm the cache
    response = await client.patch(
        f"/api/v1/content/{content['id']}",
        json={"title": "New title", "image": None},
        headers=author["headers"],
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["title"] == "New title"
    assert edited["image"] is None
    assert edited["content"] == content["content"]
    assert edited["created_at"] == content["created_at"]
    assert edited["updated_at"] > content["updated_at"]
    assert (await client.get(f"/api/v1/content/{content['id']}")).json() == edited


async def test_empty_patch_is_422(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    content = await publish(client, author)
    response = await client.patch(
        f"/api/v1/content/{content['id']}", json={}, headers=author["headers"]
    )
    assert_problem(response, 422, "validation_error")


async def test_another_user_cannot_edit_or_delete(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    intruder = await authed_user(client)
    content = await publish(client, author)
    url = f"/api/v1/content/{content['id']}"
    patch = await client.patch(url, json={"title": "Hijacked"}, headers=intruder["headers"])
    assert_problem(patch, 403, "forbidden")
    delete = await client.delete(url, headers=intruder["headers"])
    assert_problem(delete, 403, "forbidden")
    assert (await client.get(url)).json()["title"] == content["title"]


async def test_missing_content_is_404_before_ownership(client: httpx.AsyncClient) -> None:
    intruder = await authed_user(client)
    url = f"/api/v1/content/{uuid.uuid4()}"
    assert_problem(
        await client.patch(url, json={"title": "x" * 5}, headers=intruder["headers"]),
        404,
        "content_not_found",
    )
    assert_problem(await client.delete(url, headers=intruder["headers"]), 404, "content_not_found")


async def test_malformed_ids_are_422(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    for response in (
        await client.get("/api/v1/content/1%20OR%201=1"),
        await client.patch(
            "/api/v1/content/abc", json={"title": "hello"}, headers=author["headers"]
        ),
        await client.delete("/api/v1/content/abc", headers=author["headers"]),
    ):
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["parameter"] == "content_id"


async def test_delete_is_204_then_404_at_once_even_after_a_cached_read(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    content = await publish(client, author)
    url = f"/api/v1/content/{content['id']}"
    assert (await client.get(url)).status_code == 200
    assert (await client.get(url)).headers["cache-status"] == "inkwell; hit"
    response = await client.delete(url, headers=author["headers"])
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(url), 404, "content_not_found")
    listed = (await client.get("/api/v1/content")).json()
    assert content["id"] not in {item["id"] for item in listed["items"]}


async def test_content_count_follows_creates_and_deletes(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    first = await publish(client, author)
    await publish(client, author)
    profile = (await client.get(f"/api/v1/users/{author['id']}")).json()
    assert profile["content_count"] == 2
    await client.delete(f"/api/v1/content/{first['id']}", headers=author["headers"])
    profile = (await client.get(f"/api/v1/users/{author['id']}")).json()
    assert profile["content_count"] == 1
    me = (await client.get("/api/v1/users/me", headers=author["headers"])).json()
    assert me["content_count"] == 1


async def test_user_profile_lists_newest_20_summaries(client: httpx.AsyncClient) -> None:
    author = await authed_user(client)
    created = [(await publish(client, author))["id"] for _ in range(22)]
    profile = (await client.get(f"/api/v1/users/{author['id']}")).json()
    assert [c["id"] for c in profile["contents"]] == list(reversed(created))[:20]
    assert set(profile["contents"][0]) == {"id", "slug", "title", "created_at"}


async def test_admin_may_edit_and_delete_anyones_content(
    client: httpx.AsyncClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    author = await authed_user(client)
    admin = await authed_user(client)
    content = await publish(client, author)
    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    assert await asyncio.to_thread(cli, ["promote-admin", admin["email"]]) == 0
    admin_headers = {"Authorization": f"Bearer {(await log_in(client, admin))['access_token']}"}
    url = f"/api/v1/content/{content['id']}"
    edited = await client.patch(url, json={"title": "Moderated"}, headers=admin_headers)
    assert edited.status_code == 200
    assert edited.json()["author"]["id"] == author["id"]
    assert (await client.delete(url, headers=admin_headers)).status_code == 204
    me = (await client.get("/api/v1/users/me", headers=admin_headers)).json()
    assert me["role"] == "admin"


async def test_promote_admin_of_unknown_email_fails(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", backend.database_url)
    assert await asyncio.to_thread(cli, ["promote-admin", "ghost@example.com"]) == 1
