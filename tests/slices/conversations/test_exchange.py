"""Posting a message: the exchange answered whole (201) or streamed (SSE), on both providers,
and every provider failure answered 503 with nothing stored."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from src.core.ai.prompts import CHAT_SYSTEM_PROMPT
from tests.ai.conftest import openai_settings
from tests.ai.fake_provider import FakeProvider
from tests.helpers import assert_problem, authed_user
from tests.slices.conversations.chat import (
    BASE,
    STREAM,
    conversation_of,
    create,
    events,
    messages,
    metric,
    send,
)


async def test_an_exchange_answers_201_with_both_messages_stored(
    make_client: Callable[..., Any], provider_settings: dict[str, Any]
) -> None:
    async with make_client(**provider_settings) as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        response = await send(client, user, conversation, "How do I outline an essay?")
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/json"
        exchange = response.json()
        assert list(exchange) == ["user_message", "assistant_message"]
        asked, answered = exchange["user_message"], exchange["assistant_message"]
        assert list(asked) == ["id", "role", "content", "created_at"]
        assert asked["role"] == "user"
        assert asked["content"] == "How do I outline an essay?"
        assert answered["role"] == "assistant"
        assert answered["content"]
        assert answered["created_at"] >= asked["created_at"]
        assert await messages(client, user, conversation) == [asked, answered]
        after = await conversation_of(client, user, conversation["id"])
        assert after["message_count"] == 2
        assert after["updated_at"] > conversation["updated_at"]
        assert after["updated_at"] == answered["created_at"]


async def test_the_first_message_names_an_untitled_conversation(
    make_client: Callable[..., Any],
) -> None:
    async with make_client() as client:
        user = await authed_user(client)
        untitled = await create(client, user)
        titled = await create(client, user, title="Kept")
        first = "  Plan my\tessay on tea\nwith more detail on the second line"
        for conversation in (untitled, titled):
            assert (await send(client, user, conversation, first)).status_code == 201
            assert (await send(client, user, conversation, "A second one")).status_code == 201
        assert (await conversation_of(client, user, untitled["id"]))["title"] == (
            "Plan my essay on tea"
        )
        assert (await conversation_of(client, user, titled["id"]))["title"] == "Kept"


async def test_a_long_first_message_gives_a_title_cut_at_a_word(
    make_client: Callable[..., Any],
) -> None:
    async with make_client() as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        assert (await send(client, user, conversation, "word " * 100)).status_code == 201
        title = (await conversation_of(client, user, conversation["id"]))["title"]
        assert len(title) <= 80
        assert title.endswith("word…")


async def test_each_exchange_moves_its_conversation_to_the_front(
    make_client: Callable[..., Any],
) -> None:
    async with make_client() as client:
        user = await authed_user(client)
        older = await create(client, user, title="older")
        await create(client, user, title="newer")
        assert (await send(client, user, older, "hello")).status_code == 201
        listed = (await client.get(BASE, headers=user["headers"])).json()["items"]
        assert [item["title"] for item in listed] == ["older", "newer"]
        assert listed[0]["message_count"] == 2


async def test_the_provider_gets_the_system_prompt_the_newest_history_and_the_message(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    async with make_client(**openai_settings(fake_provider), ai_context_messages=3) as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        for n in range(3):
            assert (await send(client, user, conversation, f"message {n}")).status_code == 201
        stored = await messages(client, user, conversation)
        assert (await send(client, user, conversation, "the new one")).status_code == 201
    sent = fake_provider.requests[-1]["body"]["messages"]
    assert sent[0] == {"role": "system", "content": CHAT_SYSTEM_PROMPT}
    assert sent[1:-1] == [{"role": m["role"], "content": m["content"]} for m in stored[-3:]]
    assert sent[-1] == {"role": "user", "content": "the new one"}


async def test_messages_page_oldest_first_without_gaps_or_repeats(
    make_client: Callable[..., Any],
) -> None:
    async with make_client() as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        for n in range(4):
            assert (await send(client, user, conversation, f"message {n}")).status_code == 201
        every = await messages(client, user, conversation)
        assert [m["role"] for m in every] == ["user", "assistant"] * 4
        assert [m["content"] for m in every[::2]] == [f"message {n}" for n in range(4)]
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = (
                await client.get(
                    f"{BASE}/{conversation['id']}/messages", params=params, headers=user["headers"]
                )
            ).json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == every


@pytest.mark.parametrize(
    "content", ["", "x" * 8001, "nul\x00byte", "bell\x07", "\u202eoverride", "   "]
)
async def test_bad_content_is_422_and_the_provider_is_never_called(
    make_client: Callable[..., Any], fake_provider: FakeProvider, content: str
) -> None:
    async with make_client(**openai_settings(fake_provider)) as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        response = await send(client, user, conversation, content)
        assert_problem(response, 422, "validation_error")
    assert fake_provider.calls == 0


async def test_8000_characters_and_newlines_are_accepted(make_client: Callable[..., Any]) -> None:
    async with make_client() as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        content = ("line\n" * 2000)[:8000]
        response = await send(client, user, conversation, content)
        assert response.status_code == 201, response.text
        assert response.json()["user_message"]["content"] == content


# --- provider failures: 503, nothing stored ------------------------------------------------


FAILURES = pytest.mark.parametrize(
    ("mode", "delay"),
    [
        ("error", 0.0),
        ("rate_limited", 0.0),
        ("malformed", 0.0),
        ("no_choices", 0.0),
        ("unauthorized", 0.0),
        ("slow", 3.0),  # past the 2 s deadline
    ],
)


@FAILURES
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_a_provider_failure_is_503_with_retry_after_and_stores_nothing(
    make_client: Callable[..., Any],
    fake_provider: FakeProvider,
    mode: str,
    delay: float,
    streamed: bool,
) -> None:
    async with make_client(**openai_settings(fake_provider)) as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        fake_provider.mode, fake_provider.delay = mode, delay
        response = await send(client, user, conversation, "hello", **(STREAM if streamed else {}))
        assert_problem(response, 503, "ai_unavailable")
        assert int(response.headers["retry-after"]) >= 1
        assert await messages(client, user, conversation) == []
        assert await conversation_of(client, user, conversation["id"]) == conversation
        exposition = (await client.get("/metrics")).text
        labels = {"provider": "openai", "operation": "chat"}
        assert metric(exposition, "ai_requests_total", **labels, outcome="unavailable") == 1
        assert metric(exposition, "ai_requests_total", **labels, outcome="ok") == 0
        # the failed call charged nothing and left no lease: the next one goes through
        fake_provider.mode = "ok"
        assert (await send(client, user, conversation, "again")).status_code == 201
        budget = client.app.state.resources.ai_gateway.budget  # type: ignore[attr-defined]
        assert await budget.used(uuid.UUID(user["id"])) == 24  # the fake's usage, once


async def test_a_provider_that_cannot_be_reached_is_503(make_client: Callable[..., Any]) -> None:
    settings = {
        "ai_provider": "openai",
        "ai_base_url": "http://127.0.0.1:9/v1",  # the discard port: nothing listens
        "ai_model": "m",
        "ai_timeout_seconds": 2.0,
    }
    async with make_client(**settings) as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        for headers in ({}, STREAM):
            response = await send(client, user, conversation, "hello", **headers)
            assert_problem(response, 503, "ai_unavailable")
            assert "retry-after" in response.headers
        assert await messages(client, user, conversation) == []


# --- the daily token budget ---------------------------------------------------------------


async def test_tokens_are_charged_with_the_exchange(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    async with make_client(**openai_settings(fake_provider)) as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        assert (await send(client, user, conversation, "one")).status_code == 201
        assert (await send(client, user, conversation, "two", **STREAM)).status_code == 200
        budget = client.app.state.resources.ai_gateway.budget  # type: ignore[attr-defined]
        assert await budget.used(uuid.UUID(user["id"])) == 2 * 24
        exposition = (await client.get("/metrics")).text
    labels = {"provider": "openai", "operation": "chat", "outcome": "ok"}
    assert metric(exposition, "ai_requests_total", **labels) == 2
    assert metric(exposition, "ai_tokens_total", provider="openai", kind="completion") == 2 * 13


async def test_offline_tokens_are_the_texts_length_over_4(make_client: Callable[..., Any]) -> None:
    async with make_client() as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        response = await send(client, user, conversation, "Tell me about tea")
        answer = response.json()["assistant_message"]["content"]
        budget = client.app.state.resources.ai_gateway.budget  # type: ignore[attr-defined]
        used = await budget.used(uuid.UUID(user["id"]))
    prompt = -(-len(CHAT_SYSTEM_PROMPT) // 4) + -(-len("Tell me about tea") // 4)
    assert used == prompt + -(-len(answer) // 4)


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_over_the_daily_budget_is_429_with_retry_after_and_stores_nothing(
    make_client: Callable[..., Any], fake_provider: FakeProvider, streamed: bool
) -> None:
    settings = openai_settings(fake_provider, ai_daily_token_budget=10)
    async with make_client(**settings) as client:
        user = await authed_user(client)
        other = await authed_user(client)
        conversation = await create(client, user)
        assert (await send(client, user, conversation, "spends 24 tokens")).status_code == 201
        before = await messages(client, user, conversation)
        response = await send(
            client, user, conversation, "one more", **(STREAM if streamed else {})
        )
        assert_problem(response, 429, "ai_quota_exceeded")
        assert 1 <= int(response.headers["retry-after"]) <= 86400
        assert await messages(client, user, conversation) == before
        assert fake_provider.calls == 1
        # the budget is each user's own
        theirs = await create(client, other)
        assert (await send(client, other, theirs, "hello")).status_code == 201
        exposition = (await client.get("/metrics")).text
    labels = {"provider": "openai", "operation": "chat", "outcome": "quota_exceeded"}
    assert metric(exposition, "ai_requests_total", **labels) == 1


# --- streaming ----------------------------------------------------------------------------


async def test_a_stream_sends_tokens_then_done_with_the_stored_exchange(
    make_client: Callable[..., Any], provider_settings: dict[str, Any]
) -> None:
    async with make_client(**provider_settings) as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        response = await send(client, user, conversation, "Stream me an answer", **STREAM)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert "content-length" not in response.headers
        assert response.headers["x-request-id"]  # the edge's headers on a stream too
        stream = events(response.content)
        names = [name for name, _ in stream]
        assert names[-1] == "done"
        assert set(names[:-1]) == {"token"}
        assert len(names) > 2
        exchange = stream[-1][1]
        text = "".join(data["text"] for name, data in stream[:-1])
        assert exchange["assistant_message"]["content"] == text
        assert exchange["user_message"]["content"] == "Stream me an answer"
        assert await messages(client, user, conversation) == [
            exchange["user_message"],
            exchange["assistant_message"],
        ]
        assert (await conversation_of(client, user, conversation["id"]))["message_count"] == 2


async def test_a_stream_and_a_whole_answer_say_the_same(make_client: Callable[..., Any]) -> None:
    async with make_client() as client:
        user = await authed_user(client)
        first, second = await create(client, user), await create(client, user)
        whole = (await send(client, user, first, "tea")).json()
        streamed = events((await send(client, user, second, "tea", **STREAM)).content)[-1][1]
    assert whole["assistant_message"]["content"] == streamed["assistant_message"]["content"]


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "*/*",
        "text/event-stream;q=0",
        "text/event-streams",
        "",
    ],
)
async def test_only_an_acceptable_event_stream_streams(
    make_client: Callable[..., Any], accept: str
) -> None:
    async with make_client() as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        response = await send(client, user, conversation, "hi", Accept=accept)
        assert response.status_code == 201, response.text
        assert response.headers["content-type"] == "application/json"


async def test_an_event_stream_among_other_types_streams(make_client: Callable[..., Any]) -> None:
    async with make_client() as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        accept = "application/json;q=0.5, Text/Event-Stream ;q=0.9"
        response = await send(client, user, conversation, "hi", Accept=accept)
        assert response.status_code == 200, response.text
        assert events(response.content)[-1][0] == "done"


async def test_a_provider_failing_midway_ends_the_stream_with_an_error_and_stores_nothing(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    async with make_client(**openai_settings(fake_provider, ai_timeout_seconds=1.0)) as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        fake_provider.mode, fake_provider.delay = "trickle", 0.3  # cut by the 1 s deadline
        response = await send(client, user, conversation, "hello", **STREAM)
        assert response.status_code == 200
        stream = events(response.content)
        assert [name for name, _ in stream[:-1]] == ["token"] * (len(stream) - 1)
        assert len(stream) >= 2
        name, problem = stream[-1]
        assert name == "error"
        assert problem["code"] == "ai_unavailable"
        assert problem["status"] == 503
        assert problem["request_id"] == response.headers["x-request-id"]
        assert await messages(client, user, conversation) == []
        fake_provider.mode = "ok"
        assert (await send(client, user, conversation, "again")).status_code == 201


async def test_a_keyed_streaming_request_is_answered_whole_and_replayed(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    async with make_client(**openai_settings(fake_provider)) as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        key = {"Idempotency-Key": str(uuid.uuid4()), **STREAM}
        first = await send(client, user, conversation, "hello", **key)
        assert first.status_code == 201, first.text
        assert first.headers["content-type"] == "application/json"
        again = await send(client, user, conversation, "hello", **key)
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        assert fake_provider.calls == 1
        assert len(await messages(client, user, conversation)) == 2


async def test_a_conversation_deleted_while_the_provider_answers_is_404_and_stores_nothing(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    import asyncio

    async with make_client(**openai_settings(fake_provider)) as client:
        user = await authed_user(client)
        conversation = await create(client, user)
        fake_provider.mode, fake_provider.delay = "slow", 0.5
        posting = asyncio.create_task(send(client, user, conversation, "hello"))
        for _ in range(200):
            if fake_provider.calls:
                break
            await asyncio.sleep(0.01)
        deleted = await client.delete(f"{BASE}/{conversation['id']}", headers=user["headers"])
        assert deleted.status_code == 204
        assert_problem(await posting, 404, "conversation_not_found")
        # nothing charged, and the call's lease was given back: were it left to expire, the
        # next call would wait for it past its 2 s deadline and be 503
        budget = client.app.state.resources.ai_gateway.budget  # type: ignore[attr-defined]
        assert await budget.used(uuid.UUID(user["id"])) == 0
        fake_provider.mode = "ok"
        other = await create(client, user)
        assert (await send(client, user, other, "next")).status_code == 201
