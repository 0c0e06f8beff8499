"""What AI calls leave behind: GenAI spans, the `ai_*` metrics, the readiness check, and
never the API key."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.ai.conftest import FAKE_API_KEY, openai_settings
from tests.ai.fake_provider import FAKE_MODEL_ANSWERED, FakeProvider, closed_port
from tests.helpers import authed_user

DRAFTS = "/api/v1/ai/drafts"


async def test_a_call_records_a_genai_span_and_the_ai_metrics(
    make_client: Callable[..., Any],
    provider_settings: dict[str, Any],
    recorded_spans: InMemorySpanExporter,
) -> None:
    provider = provider_settings["ai_provider"]
    async with make_client(**provider_settings) as client:
        author = await authed_user(client)
        response = await client.post(DRAFTS, json={"prompt": "spans"}, headers=author["headers"])
        assert response.status_code == 201, response.text
        metrics = (await client.get("/metrics")).text
    spans = [s for s in recorded_spans.get_finished_spans() if s.name.startswith("chat ")]
    assert len(spans) == 1
    attributes = dict(spans[0].attributes or {})
    model = "fake-model" if provider == "openai" else "inkwell-offline"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.system"] == ("openai" if provider == "openai" else "inkwell")
    assert attributes["gen_ai.request.model"] == model
    assert attributes["gen_ai.response.model"] == (
        FAKE_MODEL_ANSWERED if provider == "openai" else "inkwell-offline"
    )
    prompt_tokens = attributes["gen_ai.usage.input_tokens"]
    completion_tokens = attributes["gen_ai.usage.output_tokens"]
    assert isinstance(prompt_tokens, int) and prompt_tokens > 0  # noqa: PT018
    assert isinstance(completion_tokens, int) and completion_tokens > 0  # noqa: PT018
    assert (
        f'ai_requests_total{{operation="draft",outcome="ok",provider="{provider}"}} 1.0' in metrics
    )
    assert f'ai_tokens_total{{kind="prompt",provider="{provider}"}} {prompt_tokens}.0' in metrics
    assert (
        f'ai_tokens_total{{kind="completion",provider="{provider}"}} {completion_tokens}.0'
        in metrics
    )


async def test_a_failed_call_is_counted_unavailable_and_its_span_is_an_error(
    make_client: Callable[..., Any],
    fake_provider: FakeProvider,
    recorded_spans: InMemorySpanExporter,
) -> None:
    async with make_client(**openai_settings(fake_provider)) as client:
        author = await authed_user(client)
        fake_provider.mode = "error"
        response = await client.post(DRAFTS, json={"prompt": "fails"}, headers=author["headers"])
        assert response.status_code == 503
        metrics = (await client.get("/metrics")).text
    assert 'ai_requests_total{operation="draft",outcome="unavailable",provider="openai"} 1.0' in (
        metrics
    )
    [span] = [s for s in recorded_spans.get_finished_spans() if s.name.startswith("chat ")]
    assert not span.status.is_ok
    assert (span.attributes or {})["error.type"] == "ai_unavailable"


async def test_the_duration_histogram_holds_the_providers_time_and_nothing_for_a_refusal(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    fake_provider.mode, fake_provider.delay = "slow", 0.2
    # a budget the first call spends, so the second is refused before the provider is asked
    async with make_client(**openai_settings(fake_provider, ai_daily_token_budget=1)) as client:
        author = await authed_user(client)
        answered = await client.post(DRAFTS, json={"prompt": "slow"}, headers=author["headers"])
        assert answered.status_code == 201, answered.text
        refused = await client.post(DRAFTS, json={"prompt": "more"}, headers=author["headers"])
        assert refused.status_code == 429, refused.text
        metrics = (await client.get("/metrics")).text
    series = 'operation="draft",outcome="ok",provider="openai"'
    # the 0.2 s the provider took is above the 0.16 s bucket and within the 0.32 s one
    assert f'ai_request_duration_seconds_bucket{{le="0.16",{series}}} 0.0' in metrics
    assert f'ai_request_duration_seconds_bucket{{le="0.32",{series}}} 1.0' in metrics
    assert f"ai_request_duration_seconds_count{{{series}}} 1.0" in metrics
    assert (
        'ai_requests_total{operation="draft",outcome="quota_exceeded",provider="openai"} 1.0'
        in (metrics)
    )
    assert 'ai_request_duration_seconds_count{operation="draft",outcome="quota_exceeded"' not in (
        metrics
    )


@pytest.mark.parametrize("mode", ["ok", "error", "rate_limited", "unauthorized", "slow"])
async def test_the_api_key_never_reaches_a_log_a_span_or_an_answer(
    make_client: Callable[..., Any],
    fake_provider: FakeProvider,
    recorded_spans: InMemorySpanExporter,
    capsys: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    capsys.readouterr()
    answers: list[str] = []
    # The timeout bounds the slow mode; it leaves a loaded machine time to deliver the request
    # (the fake records it on arrival).
    settings = openai_settings(fake_provider, ai_timeout_seconds=2, log_level="DEBUG")
    async with make_client(**settings) as client:
        author = await authed_user(client)
        fake_provider.mode, fake_provider.delay = mode, 5.0
        for path in (DRAFTS, "/ready", "/metrics", "/openapi.json"):
            if path == DRAFTS:
                answer = await client.post(path, json={"prompt": "key?"}, headers=author["headers"])
            else:
                answer = await client.get(path)
            answers.append(answer.text + json.dumps(dict(answer.headers)))
        answers.append(repr(client.app.state.resources.ai_gateway.provider))  # type: ignore[attr-defined]
        answers.append(repr(client.app.state.settings))  # type: ignore[attr-defined]
    output = capsys.readouterr()
    spans = json.dumps(
        [
            {"name": s.name, "attributes": dict(s.attributes or {}), "events": str(s.events)}
            for s in recorded_spans.get_finished_spans()
        ],
        default=str,
    )
    assert fake_provider.requests  # the key was really sent…
    assert fake_provider.requests[0]["headers"]["authorization"] == f"Bearer {FAKE_API_KEY}"
    for place in (output.out, output.err, spans, *answers):  # …and is nowhere else
        assert FAKE_API_KEY not in place
        assert FAKE_API_KEY[8:24] not in place


async def test_ready_reports_the_ai_provider(
    make_client: Callable[..., Any], provider_settings: dict[str, Any]
) -> None:
    async with make_client(**provider_settings) as client:
        ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"]["ai"]["status"] == "ok"


async def test_an_unreachable_ai_provider_degrades_readiness_but_never_fails_it(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    settings = openai_settings(fake_provider, ai_base_url=f"http://127.0.0.1:{closed_port()}/v1")
    async with make_client(**settings) as client:
        ready = await client.get("/ready")
        health = await client.get("/health")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["ai"]["status"] == "fail"
    assert health.status_code == 200


async def test_readiness_probes_of_the_provider_are_cached(
    make_client: Callable[..., Any], fake_provider: FakeProvider
) -> None:
    async with make_client(**openai_settings(fake_provider)) as client:
        for _ in range(5):
            assert (await client.get("/ready")).json()["checks"]["ai"]["status"] == "ok"
        fake_provider.mode = "error"  # within the cache's few seconds: still the last outcome
        assert (await client.get("/ready")).json()["checks"]["ai"]["status"] == "ok"
    assert fake_provider.model_calls == 1  # six probes, one request to the provider
    assert fake_provider.calls == 0
