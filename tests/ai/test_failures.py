"""Every way the provider can fail is 503 `ai_unavailable` with `Retry-After`, promptly, and
stores nothing: no draft, no token charge. The daily budget is 429 `ai_quota_exceeded`."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from src.core.ai.budget import seconds_to_midnight
from tests.ai.conftest import openai_settings
from tests.ai.fake_provider import FakeProvider, closed_port
from tests.helpers import assert_problem, authed_user

DRAFTS = "/api/v1/ai/drafts"
FAKE_CALL_TOKENS = 24  # the fake's usage: 11 prompt + 13 completion


async def _used(client: Any, user: dict[str, Any]) -> int:
    budget = client.app.state.resources.ai_gateway.budget
    return int(await budget.used(uuid.UUID(user["id"])))


async def _assert_nothing_stored(client: Any, user: dict[str, Any]) -> None:
    own = await client.get("/api/v1/users/me/content", headers=user["headers"])
    assert own.json()["items"] == []
    assert await _used(client, user) == 0


@pytest.mark.parametrize(
    ("mode", "retry_after"),
    [
        ("slow", None),
        ("error", None),
        ("rate_limited", "7"),
        ("malformed", None),
        ("no_choices", None),
        ("unauthorized", None),
    ],
)
async def test_a_failing_provider_is_503_ai_unavailable_and_stores_nothing(
    make_client: Callable[..., Any], fake_provider: FakeProvider, mode: str, retry_after: str | None
) -> None:
    async with make_client(**openai_settings(fake_provider, ai_timeout_seconds=0.5)) as client:
        author = await authed_user(client)
        fake_provider.mode, fake_provider.delay = mode, 30.0
        # A guard against a hang, far beyond the 0.5 s deadline: not a measurement.
        response = await asyncio.wait_for(
            client.post(DRAFTS, json={"prompt": "this will fail"}, headers=author["headers"]), 10
        )
        problem = assert_problem(response, 503, "ai_unavailable")
        assert int(response.headers["retry-after"]) >= 1
        if retry_after is not None:  # the provider's own Retry-After is honoured
            assert response.headers["retry-after"] == retry_after
        assert "sk-" not in response.text
        assert problem["detail"] == "The AI provider is unavailable; try again shortly."
        fake_provider.mode = "ok"
        await _assert_nothing_stored(client, author)
        # The user is not locked out: the next call is admitted at once.
        again = await client.post(
            DRAFTS, json={"prompt": "now it works"}, headers=author["headers"]
        )
        assert again.status_code == 201, again.text


async def test_a_provider_that_refuses_connections_is_503_ai_unavailable(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    settings = openai_settings(fake_provider, ai_base_url=f"http://127.0.0.1:{closed_port()}/v1")
    async with make_client(**settings) as client:
        author = await authed_user(client)
        response = await client.post(
            DRAFTS, json={"prompt": "nobody home"}, headers=author["headers"]
        )
        assert_problem(response, 503, "ai_unavailable")
        assert int(response.headers["retry-after"]) >= 1
        await _assert_nothing_stored(client, author)


async def test_over_the_daily_budget_is_429_ai_quota_exceeded_until_midnight(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    settings = openai_settings(fake_provider, ai_daily_token_budget=FAKE_CALL_TOKENS + 1)
    async with make_client(**settings) as client:
        author = await authed_user(client)
        other = await authed_user(client)
        for _ in range(2):  # 0 < 25, then 24 < 25: both admitted
            ok = await client.post(DRAFTS, json={"prompt": "spend"}, headers=author["headers"])
            assert ok.status_code == 201, ok.text
        assert await _used(client, author) == 2 * FAKE_CALL_TOKENS
        refused = await client.post(DRAFTS, json={"prompt": "spend"}, headers=author["headers"])
        before = seconds_to_midnight(dt.datetime.now(dt.UTC))
        assert_problem(refused, 429, "ai_quota_exceeded")
        assert abs(int(refused.headers["retry-after"]) - before) <= 5
        assert fake_provider.calls == 2  # refused before the provider
        # The budget is per user.
        theirs = await client.post(DRAFTS, json={"prompt": "mine"}, headers=other["headers"])
        assert theirs.status_code == 201, theirs.text
        metrics = (await client.get("/metrics")).text
    assert (
        'ai_requests_total{operation="draft",outcome="quota_exceeded",provider="openai"} 1.0'
        in metrics
    )


async def test_the_offline_provider_is_charged_by_text_length(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(ai_provider="offline", ai_daily_token_budget=1) as client:
        author = await authed_user(client)
        ok = await client.post(DRAFTS, json={"prompt": "offline tokens"}, headers=author["headers"])
        assert ok.status_code == 201, ok.text
        used = await _used(client, author)
        # prompt (system + user) and completion, each length / 4 rounded up
        assert used >= len(ok.json()["content"]) // 4
        refused = await client.post(DRAFTS, json={"prompt": "again"}, headers=author["headers"])
        assert_problem(refused, 429, "ai_quota_exceeded")


async def test_concurrent_calls_near_the_budget_overrun_it_by_at_most_one_call(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    budget = 2 * FAKE_CALL_TOKENS + 10  # admits at 0, 24 and 48 tokens: three calls
    settings = openai_settings(fake_provider, ai_daily_token_budget=budget, ai_timeout_seconds=10)
    async with make_client(**settings) as client:
        author = await authed_user(client)
        fake_provider.mode, fake_provider.delay = "slow", 0.05
        answers = await asyncio.gather(
            *(
                client.post(DRAFTS, json={"prompt": f"race {n}"}, headers=author["headers"])
                for n in range(8)
            )
        )
        statuses = sorted(answer.status_code for answer in answers)
        used = await _used(client, author)
        own = await client.get("/api/v1/users/me/content?limit=100", headers=author["headers"])
    assert statuses == [201] * 3 + [429] * 5, [a.text for a in answers if a.status_code >= 500]
    assert used == 3 * FAKE_CALL_TOKENS
    assert used - budget < FAKE_CALL_TOKENS  # the bound: never more than one call over
    assert len(own.json()["items"]) == 3
    assert fake_provider.calls == 3
