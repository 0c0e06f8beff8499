"""`POST /api/v1/ai/drafts` through the HTTP API, on both providers and both backends."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.ai.fake_provider import FakeProvider
from tests.helpers import assert_problem, authed_user, publish

DRAFTS = "/api/v1/ai/drafts"


async def test_a_creator_gets_a_draft_written_by_the_provider(
    make_client: Callable[..., Any], provider_settings: dict[str, Any]
) -> None:
    async with make_client(**provider_settings) as client:
        author = await authed_user(client)
        prompt = "Asyncio event loops for web developers"
        response = await client.post(
            DRAFTS,
            json={"prompt": prompt, "tags": ["Python", "async io"]},
            headers=author["headers"],
        )
        assert response.status_code == 201, response.text
        draft = response.json()
        assert response.headers["location"] == f"/api/v1/content/{draft['id']}"
        assert draft["status"] == "draft"
        assert draft["published_at"] is None
        assert draft["author"]["id"] == author["id"]
        assert draft["tags"] == ["async-io", "python"]
        assert len(draft["title"]) >= 3
        assert len(draft["content"]) >= 10
        assert "Asyncio event loops" in draft["title"]
        # The content slice's own rules applied: a slug from the title, readable at once by
        # the author, and nobody else's to see.
        assert draft["slug"].startswith("asyncio-event-loops") or draft["slug"].startswith(
            "fake-draft"
        )
        mine = await client.get(response.headers["location"], headers=author["headers"])
        assert mine.status_code == 200
        assert mine.json() == draft
        assert (await client.get(response.headers["location"])).status_code == 404
        own = await client.get("/api/v1/users/me/content?status=draft", headers=author["headers"])
        assert [item["id"] for item in own.json()["items"]] == [draft["id"]]


async def test_the_openai_provider_gets_the_system_prompt_and_the_callers_prompt(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    from tests.ai.conftest import openai_settings

    async with make_client(**openai_settings(fake_provider)) as client:
        author = await authed_user(client)
        prompt = "Why type hints make refactoring safer"
        response = await client.post(DRAFTS, json={"prompt": prompt}, headers=author["headers"])
        assert response.status_code == 201, response.text
    assert fake_provider.calls == 1
    sent = fake_provider.requests[0]["body"]
    assert sent["model"] == "fake-model"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert "# Title" in sent["messages"][0]["content"]
    assert sent["messages"][1]["content"] == prompt
    assert response.json()["title"] == "Fake draft: Why type hints make refactoring safer"
    assert "fake provider for the prompt" in response.json()["content"]


async def test_the_offline_draft_is_grounded_in_published_content_and_names_its_sources(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(ai_provider="offline") as client:
        author = await authed_user(client)
        source = await publish(
            client,
            author,
            title="Kubernetes readiness probes explained",
            content="Readiness probes keep a pod out of the Service while it cannot serve.",
        )
        hidden = await publish(
            client,
            author,
            title="Kubernetes secrets in drafts",
            content="A draft about kubernetes that nobody else may see.",
            status="draft",
        )
        await publish(client, author, title="Unrelated gardening", content="Tomatoes and basil.")
        response = await client.post(
            DRAFTS, json={"prompt": "Kubernetes probes for beginners"}, headers=author["headers"]
        )
        assert response.status_code == 201, response.text
        body = response.json()["content"]
    assert source["slug"] in body
    assert source["title"] in body
    assert hidden["slug"] not in body  # drafts are never sources
    assert "gardening" not in body
    assert "inkwell-offline" in body
    assert response.json()["title"] == "Kubernetes probes for beginners"


async def test_the_offline_draft_is_deterministic(make_client: Callable[..., Any]) -> None:
    async with make_client(ai_provider="offline") as client:
        author = await authed_user(client)
        await publish(client, author, title="Notes on SQLite WAL", content="WAL mode and readers.")
        prompt = {"prompt": "sqlite wal mode"}
        first = await client.post(DRAFTS, json=prompt, headers=author["headers"])
        second = await client.post(DRAFTS, json=prompt, headers=author["headers"])
    assert first.status_code == second.status_code == 201
    assert first.json()["content"] == second.json()["content"]
    assert first.json()["title"] == second.json()["title"]
    assert first.json()["slug"] != second.json()["slug"]  # -2: the content slice's rule


async def test_a_viewer_may_not_write_ai_drafts_and_the_provider_is_never_called(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    from tests.ai.conftest import openai_settings

    async with make_client(signup_role="viewer", **openai_settings(fake_provider)) as client:
        viewer = await authed_user(client)
        response = await client.post(
            DRAFTS, json={"prompt": "let me in"}, headers=viewer["headers"]
        )
        assert_problem(response, 403, "forbidden")
        own = await client.get("/api/v1/users/me/content", headers=viewer["headers"])
        assert own.json()["items"] == []
    assert fake_provider.calls == 0


async def test_an_anonymous_caller_gets_401_and_the_provider_is_never_called(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    from tests.ai.conftest import openai_settings

    async with make_client(**openai_settings(fake_provider)) as client:
        response = await client.post(DRAFTS, json={"prompt": "anonymous draft"})
        assert_problem(response, 401, "not_authenticated")
        assert response.headers["www-authenticate"] == "Bearer"
        forged = await client.post(
            DRAFTS, json={"prompt": "forged"}, headers={"Authorization": "Bearer not.a.token"}
        )
        assert_problem(forged, 401, "invalid_token")
    assert fake_provider.calls == 0


async def test_a_retry_with_the_same_idempotency_key_replays_without_calling_the_provider(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    from tests.ai.conftest import openai_settings

    async with make_client(**openai_settings(fake_provider)) as client:
        author = await authed_user(client)
        headers = {**author["headers"], "Idempotency-Key": f"draft-{uuid.uuid4()}"}
        body = {"prompt": "Idempotent AI drafts", "tags": ["retry"]}
        first = await client.post(DRAFTS, json=body, headers=headers)
        second = await client.post(DRAFTS, json=body, headers=headers)
        assert first.status_code == second.status_code == 201
        assert second.headers["idempotent-replayed"] == "true"
        assert second.content == first.content
        assert second.headers["location"] == first.headers["location"]
        own = await client.get("/api/v1/users/me/content", headers=author["headers"])
        assert len(own.json()["items"]) == 1
    assert fake_provider.calls == 1


async def test_a_failed_provider_call_releases_the_idempotency_key_for_a_retry(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    from tests.ai.conftest import openai_settings

    async with make_client(**openai_settings(fake_provider)) as client:
        author = await authed_user(client)
        headers = {**author["headers"], "Idempotency-Key": f"draft-{uuid.uuid4()}"}
        fake_provider.mode = "error"
        failed = await client.post(DRAFTS, json={"prompt": "retry me"}, headers=headers)
        assert_problem(failed, 503, "ai_unavailable")
        fake_provider.mode = "ok"
        retried = await client.post(DRAFTS, json={"prompt": "retry me"}, headers=headers)
        assert retried.status_code == 201, retried.text
        assert "idempotent-replayed" not in retried.headers
    assert fake_provider.calls == 2


async def test_prompts_and_tags_are_validated_before_the_provider_is_called(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    from tests.ai.conftest import openai_settings

    async with make_client(**openai_settings(fake_provider)) as client:
        author = await authed_user(client)
        for body, pointer in (
            ({"prompt": "ab"}, "/prompt"),
            ({"prompt": "x" * 2001}, "/prompt"),
            ({"prompt": "   \n   "}, "/prompt"),
            ({"prompt": "fine prompt", "tags": ["no/slashes"]}, "/tags"),
            ({"prompt": "fine prompt", "tags": [f"t{i}" for i in range(11)]}, "/tags"),
            ({"prompt": "fine prompt", "status": "published"}, "/status"),
            ({}, "/prompt"),
        ):
            response = await client.post(DRAFTS, json=body, headers=author["headers"])
            problem = assert_problem(response, 422, "validation_error")
            assert any(e.get("pointer", "").startswith(pointer) for e in problem["errors"]), (
                body,
                problem,
            )
    assert fake_provider.calls == 0


async def test_the_provider_is_called_while_the_command_holds_no_database_connection(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    import asyncio

    from tests.ai.conftest import openai_settings

    async with make_client(**openai_settings(fake_provider)) as client:
        author = await authed_user(client)
        database = client.app.state.resources.database  # type: ignore[attr-defined]
        pool = database.write_engine.pool
        fake_provider.mode, fake_provider.delay = "slow", 0.5
        request = asyncio.create_task(
            client.post(DRAFTS, json={"prompt": "while waiting"}, headers=author["headers"])
        )
        for _ in range(200):
            if fake_provider.calls:
                break
            await asyncio.sleep(0.01)
        assert fake_provider.calls == 1
        # Connections kept between session checks are checked out but serve no one.
        held = pool.checkedout() - database.primary.held if hasattr(pool, "checkedout") else 0
        response = await request
        assert response.status_code == 201, response.text
    assert held == 0
