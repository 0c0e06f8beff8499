"""The gateway the slices call, on the wired application: a streamed chat call is charged
what its final completion says, a call left without a charge gives its lease back, and both
are counted."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from src.core.ai.port import ChatMessage, Completion
from src.core.ai.prompts import CHAT_SYSTEM_PROMPT
from src.core.db.uow import command_transaction
from tests.helpers import authed_user

MESSAGES = (ChatMessage("system", CHAT_SYSTEM_PROMPT), ChatMessage("user", "hello there"))


async def test_a_streamed_call_is_charged_its_usage_in_the_command_transaction(
    make_client: Callable[..., Any], provider_settings: dict[str, Any]
) -> None:
    async with make_client(**provider_settings) as client:
        user = uuid.UUID((await authed_user(client))["id"])
        resources = client.app.state.resources  # type: ignore[attr-defined]
        gateway = resources.ai_gateway
        async with gateway.call(user, "chat") as call:
            pieces = [piece async for piece in call.stream(MESSAGES)]
            async with command_transaction(resources.unit_of_work()) as uow:
                await call.charge(uow)
        final = pieces[-1]
        assert isinstance(final, Completion)
        assert "".join(p for p in pieces[:-1] if isinstance(p, str)) == final.text
        assert await gateway.budget.used(user) == final.total_tokens
        metrics = (await client.get("/metrics")).text
    provider = provider_settings["ai_provider"]
    assert f'ai_requests_total{{operation="chat",outcome="ok",provider="{provider}"}} 1.0' in (
        metrics
    )


async def test_leaving_a_call_without_charging_gives_the_lease_back_and_charges_nothing(
    make_client: Callable[..., Any],
) -> None:
    async with make_client(ai_timeout_seconds=0.3) as client:
        user = uuid.UUID((await authed_user(client))["id"])
        gateway = client.app.state.resources.ai_gateway  # type: ignore[attr-defined]

        async def fail_after_the_call() -> None:
            async with gateway.call(user, "chat") as call:
                await call.complete(MESSAGES)
                raise RuntimeError("the use case failed after the call")

        with pytest.raises(RuntimeError):
            await fail_after_the_call()
        # admitted at once, not after the lease's expiry (the wait is only 0.3 s)
        async with gateway.call(user, "chat") as call:
            await call.complete(MESSAGES)
        assert await gateway.budget.used(user) == 0


async def test_the_providers_pooled_client_is_closed_with_the_application(
    make_client: Callable[..., Any], fake_provider: Any
) -> None:
    from tests.ai.conftest import openai_settings

    async with make_client(**openai_settings(fake_provider)) as client:
        provider = client.app.state.resources.ai_gateway.provider.inner  # type: ignore[attr-defined]
        author = await authed_user(client)
        drafted = await client.post(
            "/api/v1/ai/drafts", json={"prompt": "pooled"}, headers=author["headers"]
        )
        assert drafted.status_code == 201
        http = provider._client
        assert not http.is_closed
    assert http.is_closed
