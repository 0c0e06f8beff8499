"""The provider contract, run against both adapters: the offline provider and the
OpenAI-compatible adapter talking HTTP to the fake server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest
from pydantic import SecretStr

from src.core.ai.offline import OFFLINE_MODEL, OfflineProvider, Source
from src.core.ai.openai_compatible import OpenAICompatibleProvider
from src.core.ai.port import AIProvider, AIUnavailable, ChatMessage, Completion
from src.core.ai.prompts import CHAT_SYSTEM_PROMPT, DRAFT_SYSTEM_PROMPT, parse_draft
from tests.ai.conftest import FAKE_API_KEY, PROVIDERS
from tests.ai.fake_provider import FAKE_MODEL_ANSWERED, FakeProvider

MESSAGES = (
    ChatMessage("system", DRAFT_SYSTEM_PROMPT),
    ChatMessage("user", "Structured logging with loguru"),
)


async def _search(words: tuple[str, ...], limit: int) -> Sequence[Source]:
    catalogue = [
        Source("Loguru in production", "loguru-in-production", "JSON lines, off the loop."),
        Source("Structured logs", "structured-logs", "One object per line."),
    ]
    found = [s for s in catalogue if all(w in s.title.lower() for w in words)]
    return found[:limit]


@pytest.fixture(params=PROVIDERS)
async def provider(
    request: pytest.FixtureRequest, fake_provider: FakeProvider
) -> AsyncIterator[AIProvider]:
    adapter: AIProvider
    if request.param == "openai":
        adapter = OpenAICompatibleProvider(
            fake_provider.base_url, "fake-model", SecretStr(FAKE_API_KEY), 2.0
        )
    else:
        adapter = OfflineProvider(_search)
    yield adapter
    await adapter.aclose()


async def test_complete_answers_text_with_its_model_and_usage(provider: AIProvider) -> None:
    completion = await provider.complete(MESSAGES)
    assert completion.text.strip()
    assert completion.prompt_tokens > 0
    assert completion.completion_tokens > 0
    assert completion.model in (OFFLINE_MODEL, FAKE_MODEL_ANSWERED)
    draft = parse_draft(completion.text, "Structured logging with loguru")
    assert draft is not None
    assert len(draft.title) >= 3


async def test_stream_yields_chunks_then_one_completion_of_the_same_text(
    provider: AIProvider,
) -> None:
    pieces = [piece async for piece in provider.stream(MESSAGES)]
    chunks, final = pieces[:-1], pieces[-1]
    assert len(chunks) > 1
    assert all(isinstance(chunk, str) for chunk in chunks)
    assert isinstance(final, Completion)
    assert "".join(str(chunk) for chunk in chunks) == final.text
    assert final.prompt_tokens > 0
    assert final.completion_tokens > 0
    whole = await provider.complete(MESSAGES)
    assert whole.text == final.text


async def test_ping_succeeds_while_the_provider_answers(provider: AIProvider) -> None:
    await provider.ping()


async def test_the_offline_provider_names_its_sources_and_is_deterministic() -> None:
    offline = OfflineProvider(_search)
    first = await offline.complete(MESSAGES)
    assert first == await offline.complete(MESSAGES)
    assert "loguru-in-production" in first.text
    assert first.model == OFFLINE_MODEL
    assert first.completion_tokens == -(-len(first.text) // 4)
    chat = await offline.complete(
        (ChatMessage("system", CHAT_SYSTEM_PROMPT), ChatMessage("user", "tell me about loguru"))
    )
    assert not chat.text.startswith("#")
    assert "Loguru in production" in chat.text


async def test_without_usage_in_the_answer_tokens_are_estimated_from_length(
    fake_provider: FakeProvider,
) -> None:
    fake_provider.mode = "no_usage"
    adapter = OpenAICompatibleProvider(fake_provider.base_url, "fake-model", None, 2.0)
    try:
        whole = await adapter.complete(MESSAGES)
        streamed = [piece async for piece in adapter.stream(MESSAGES)][-1]
    finally:
        await adapter.aclose()
    assert isinstance(streamed, Completion)
    for completion in (whole, streamed):
        assert completion.completion_tokens == -(-len(completion.text) // 4)
        expected_prompt = sum(-(-len(m.content) // 4) for m in MESSAGES)
        assert completion.prompt_tokens == expected_prompt
    # without a key, no Authorization header at all
    assert "authorization" not in fake_provider.requests[0]["headers"]


async def test_the_key_travels_only_as_a_bearer_header(fake_provider: FakeProvider) -> None:
    adapter = OpenAICompatibleProvider(
        fake_provider.base_url, "fake-model", SecretStr(FAKE_API_KEY), 2.0
    )
    try:
        await adapter.complete(MESSAGES)
        [piece async for piece in adapter.stream(MESSAGES)]
    finally:
        await adapter.aclose()
    for sent in fake_provider.requests:
        assert sent["headers"]["authorization"] == f"Bearer {FAKE_API_KEY}"
        assert FAKE_API_KEY not in str(sent["body"])
    assert FAKE_API_KEY not in repr(adapter)
    assert sent["body"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("mode", ["error", "rate_limited", "malformed", "unauthorized"])
async def test_a_stream_that_fails_raises_ai_unavailable(
    fake_provider: FakeProvider, mode: str
) -> None:
    fake_provider.mode = mode
    adapter = OpenAICompatibleProvider(fake_provider.base_url, "fake-model", None, 2.0)
    try:
        with pytest.raises(AIUnavailable) as raised:
            [piece async for piece in adapter.stream(MESSAGES)]
    finally:
        await adapter.aclose()
    if mode == "rate_limited":
        assert raised.value.retry_after == fake_provider.retry_after


async def test_a_trickling_stream_is_cut_at_the_total_deadline(
    fake_provider: FakeProvider,
) -> None:
    # Each chunk arrives within any per-read timeout, but the whole answer would take ~8 s.
    fake_provider.mode, fake_provider.delay = "trickle", 0.25
    adapter = OpenAICompatibleProvider(fake_provider.base_url, "fake-model", None, 0.6)
    received: list[str | Completion] = []

    async def consume() -> None:
        async for piece in adapter.stream(MESSAGES):
            received.append(piece)

    try:
        with pytest.raises(AIUnavailable) as raised:
            await consume()
    finally:
        await adapter.aclose()
    assert "0.6s" in raised.value.reason
    assert 0 < len(received) < 10  # some text came, then the deadline cut it
    assert not any(isinstance(piece, Completion) for piece in received)


async def _consume(provider: AIProvider) -> list[str | Completion]:
    return [piece async for piece in provider.stream(MESSAGES)]


async def test_finished_calls_give_their_connection_back_to_the_pool(
    fake_provider: FakeProvider,
) -> None:
    # A response closed before the end of its body is discarded by the pool: every streamed
    # call, and every call after an error answer, would then pay a new connection.
    adapter = OpenAICompatibleProvider(fake_provider.base_url, "fake-model", None, 2.0)
    try:
        for mode in ("ok", "error", "rate_limited"):
            fake_provider.mode = mode
            for call in (lambda: adapter.complete(MESSAGES), lambda: _consume(adapter)):
                try:
                    await call()
                except AIUnavailable:
                    assert mode != "ok"
    finally:
        await adapter.aclose()
    peers = {sent["peer"] for sent in fake_provider.requests}
    assert len(fake_provider.requests) == 6
    assert len(peers) == 1  # one connection (one client port) served every call


async def test_an_answer_too_large_to_be_useful_is_refused_not_read_on(
    fake_provider: FakeProvider,
) -> None:
    fake_provider.mode = "huge"  # 5 MiB, whole or streamed
    adapter = OpenAICompatibleProvider(fake_provider.base_url, "fake-model", None, 5.0)
    try:
        with pytest.raises(AIUnavailable) as whole:
            await adapter.complete(MESSAGES)
        with pytest.raises(AIUnavailable) as streamed:
            [piece async for piece in adapter.stream(MESSAGES)]
    finally:
        await adapter.aclose()
    assert whole.value.reason == "the provider's answer is too large"
    assert streamed.value.reason == "the provider's answer is too long"


async def test_a_consumer_that_stops_early_closes_the_providers_stream_at_once(
    fake_provider: FakeProvider,
) -> None:
    from src.core.ai.gateway import AICall, AIGateway
    from src.observability.ai import InstrumentedProvider

    fake_provider.mode, fake_provider.delay = "trickle", 0.05
    adapter = OpenAICompatibleProvider(fake_provider.base_url, "fake-model", None, 5.0)
    unobserved = AIGateway.__dataclass_fields__["observer"].default_factory()  # type: ignore[misc]
    call = AICall(InstrumentedProvider(adapter), None, unobserved, "chat", None)  # type: ignore[arg-type]
    pool = adapter._client._transport._pool  # type: ignore[attr-defined]
    try:
        async with contextlib.aclosing(call.stream(MESSAGES)) as pieces:
            async for piece in pieces:
                assert isinstance(piece, str)
                assert len(pool.connections) == 1
                break  # the client left after the first chunk
        # Closing the gateway's stream closed every layer under it (the instrumented
        # provider, the adapter), not left for the garbage collector: the unfinished
        # response, and with it the connection, are gone.
        assert pool.connections == []
    finally:
        await adapter.aclose()
