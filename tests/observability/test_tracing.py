"""Traces reach a real OTLP receiver: server span, use-case span and SQL spans, one trace."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as redis

from src.observability.tracing import Tracing
from tests.conftest import Backend
from tests.helpers import sign_up, signup_body
from tests.observability.otlp import CLIENT, SERVER, OtlpReceiver, ReceivedSpan, otlp_receiver


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def descends_from(span: ReceivedSpan, ancestor: ReceivedSpan, spans: list[ReceivedSpan]) -> bool:
    by_id = {s.span_id: s for s in spans}
    current: ReceivedSpan | None = span
    while current is not None:
        if current.parent_span_id == ancestor.span_id:
            return True
        current = by_id.get(current.parent_span_id)
    return False


def only(spans: list[ReceivedSpan], predicate: Callable[[ReceivedSpan], bool]) -> ReceivedSpan:
    matching = [span for span in spans if predicate(span)]
    assert len(matching) == 1, [(s.name, s.kind) for s in spans]
    return matching[0]


async def test_a_request_is_one_trace_in_the_callers_trace_with_sql_and_use_case_spans(
    make_client: Callable[..., Any], receiver: OtlpReceiver
) -> None:
    trace_id, caller_span_id, header = traceparent()
    async with make_client(
        otel_exporter_otlp_endpoint=receiver.url, OTEL_SERVICE_NAME="inkwell-traced"
    ) as client:
        response = await client.post(
            "/api/v1/signup", json=signup_body(), headers={"traceparent": header}
        )
        assert response.status_code == 201
    # leaving the application's lifespan flushed the spans

    spans = receiver.in_trace(trace_id)
    server = only(spans, lambda s: s.kind == SERVER)
    assert server.parent_span_id == caller_span_id
    assert server.attributes.get("http.route") == "/api/v1/signup"
    use_case = only(spans, lambda s: s.name == "signup.execute")
    assert descends_from(use_case, server, spans)
    assert use_case.attributes["user.id"] == response.json()["id"]
    # The use case writes the write table; the boundary's commit runs the projector.
    commit = only(spans, lambda s: s.name == "unit_of_work.commit")
    assert descends_from(commit, server, spans)
    assert not descends_from(commit, use_case, spans)
    inserts = [s for s in spans if s.kind == CLIENT and "INSERT" in s.name]
    assert len(inserts) == 2, [s.name for s in spans]
    assert sum(descends_from(s, use_case, spans) for s in inserts) == 1
    assert sum(descends_from(s, commit, spans) for s in inserts) == 1
    assert {s.resource["service.name"] for s in spans} == {"inkwell-traced"}
    assert {s.resource["deployment.environment"] for s in spans} == {"test"}
    assert "/v1/traces" in receiver.paths


async def test_queries_on_the_read_engine_are_traced(
    make_client: Callable[..., Any], receiver: OtlpReceiver
) -> None:
    trace_id, _, header = traceparent()
    async with make_client(otel_exporter_otlp_endpoint=receiver.url) as client:
        user = await sign_up(client)
        response = await client.get(f"/api/v1/users/{user['id']}", headers={"traceparent": header})
        assert response.status_code == 200

    spans = receiver.in_trace(trace_id)
    use_case = only(spans, lambda s: s.name == "users.get")
    assert use_case.attributes["user.id"] == user["id"]
    selects = [s for s in spans if s.kind == CLIENT and s.name.startswith("SELECT")]
    assert selects, [s.name for s in spans]
    assert all(descends_from(select, use_case, spans) for select in selects)


async def test_probes_and_metrics_are_not_traced(
    make_client: Callable[..., Any], receiver: OtlpReceiver
) -> None:
    trace_id, _, header = traceparent()
    async with make_client(otel_exporter_otlp_endpoint=receiver.url) as client:
        for path in ("/health", "/ready", "/metrics"):
            response = await client.get(path, headers={"traceparent": header})
            assert response.status_code == 200, path
        await sign_up(client)  # something is exported, so the receiver is known to work

    assert receiver.spans
    assert receiver.in_trace(trace_id) == []
    assert not [s for s in receiver.spans if s.kind == CLIENT and s.parent_span_id == ""]


async def test_each_application_exports_to_its_own_endpoint(
    make_client: Callable[..., Any],
) -> None:
    with otlp_receiver() as first, otlp_receiver() as second:
        async with (
            make_client(otel_exporter_otlp_endpoint=first.url, OTEL_SERVICE_NAME="one") as one,
            make_client(otel_exporter_otlp_endpoint=second.url, OTEL_SERVICE_NAME="two") as two,
        ):
            first_trace, _, first_header = traceparent()
            second_trace, _, second_header = traceparent()
            await one.post(
                "/api/v1/signup", json=signup_body(), headers={"traceparent": first_header}
            )
            await two.post(
                "/api/v1/signup", json=signup_body(), headers={"traceparent": second_header}
            )

    for receiver, mine, other, name in (
        (first, first_trace, second_trace, "one"),
        (second, second_trace, first_trace, "two"),
    ):
        assert {s.name for s in receiver.in_trace(mine)} >= {"signup.execute"}
        assert receiver.in_trace(other) == []
        assert {s.resource["service.name"] for s in receiver.spans} == {name}


async def test_an_instrumented_redis_client_gets_client_spans(
    backend: Backend, receiver: OtlpReceiver
) -> None:
    if backend.redis_url is None:
        pytest.skip("this backend has no Redis")
    tracing = Tracing(backend.settings(otel_exporter_otlp_endpoint=receiver.url))
    tracing.start(engines=[])
    client = redis.from_url(backend.redis_url)
    try:
        tracing.instrument_redis(client)
        assert tracing.provider is not None
        tracer = tracing.provider.get_tracer("test")
        with tracer.start_as_current_span("caller") as caller:
            await client.ping()
        trace_id = format(caller.get_span_context().trace_id, "032x")
    finally:
        await client.aclose()
        await tracing.shutdown()

    ping = only(receiver.in_trace(trace_id), lambda s: s.kind == CLIENT)
    assert ping.name == "PING"


async def test_without_an_endpoint_the_asgi_instrumentation_is_not_installed(
    make_client: Any, receiver: OtlpReceiver
) -> None:
    async with make_client() as quiet:
        assert not getattr(quiet.app, "_is_instrumented_by_opentelemetry", False)
    async with make_client(otel_exporter_otlp_endpoint=receiver.url) as traced:
        assert getattr(traced.app, "_is_instrumented_by_opentelemetry", False)


async def test_without_an_endpoint_log_lines_still_carry_the_callers_trace_id(
    make_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    trace_id, _, header = traceparent()
    async with make_client(log_level="INFO") as client:
        response = await client.get("/api/v1/users", headers={"traceparent": header})
    assert response.status_code == 200
    access = [line for line in capsys.readouterr().out.splitlines() if '"http.access"' in line]
    assert access, "no access line"
    assert f'"trace_id":"{trace_id}"' in access[-1]
