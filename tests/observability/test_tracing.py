"""Traces: one provider per process, server/use-case/SQL/Redis spans in one trace, stable
semantic conventions, OTLP export from a real server process, and nothing recorded (but trace
ids in logs) without an exporter."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from src.observability.tracing import configure_tracing
from src.settings import Settings
from tests.conftest import BASE_SETTINGS, Backend
from tests.helpers import sign_up, signup_body
from tests.observability.otlp import CLIENT, SERVER, OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.resilience.servers import PROJECT_ROOT, InkwellProcess

DEPRECATED_HTTP = {"http.method", "http.status_code", "http.target", "http.url", "http.scheme"}
DEPRECATED_DB = {"db.system", "db.statement", "db.name"}


def traceparent(sampled: bool = True) -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def in_trace(spans: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    wanted = int(trace_id, 16)
    return [s for s in spans.get_finished_spans() if s.context and s.context.trace_id == wanted]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def descends_from(span: ReadableSpan, ancestor: ReadableSpan, spans: list[ReadableSpan]) -> bool:
    by_id = {s.context.span_id: s for s in spans if s.context}
    current: ReadableSpan | None = span
    assert ancestor.context is not None
    while current is not None:
        if parent_of(current) == ancestor.context.span_id:
            return True
        current = by_id.get(parent_of(current) or 0)
    return False


def only(spans: list[Any], predicate: Callable[[Any], bool]) -> Any:
    matching = [span for span in spans if predicate(span)]
    assert len(matching) == 1, [(s.name, s.kind) for s in spans]
    return matching[0]


async def test_a_request_is_one_trace_in_the_callers_trace_with_sql_and_use_case_spans(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    trace_id, caller_span_id, header = traceparent()
    response = await client.post(
        "/api/v1/signup", json=signup_body(), headers={"traceparent": header}
    )
    assert response.status_code == 201

    spans = in_trace(recorded_spans, trace_id)
    server = only(spans, lambda s: s.kind == SpanKind.SERVER)
    assert parent_of(server) == int(caller_span_id, 16)
    assert server.attributes["http.route"] == "/api/v1/signup"
    assert server.attributes["inkwell.request_id"] == response.headers["x-request-id"]
    use_case = only(spans, lambda s: s.name == "signup.execute")
    assert descends_from(use_case, server, spans)
    assert use_case.attributes["user.id"] == response.json()["id"]
    # The use case writes the write table; the boundary's commit runs the projector.
    commit = only(spans, lambda s: s.name == "unit_of_work.commit")
    assert descends_from(commit, server, spans)
    assert not descends_from(commit, use_case, spans)
    # The commit writes the read table and the event's outbox row.
    inserts = [s for s in spans if s.kind == SpanKind.CLIENT and "INSERT" in s.name]
    assert len(inserts) == 3, [s.name for s in spans]
    assert sum(descends_from(s, use_case, spans) for s in inserts) == 1
    assert sum(descends_from(s, commit, spans) for s in inserts) == 2
    assert {s.resource.attributes["service.name"] for s in spans} == {"inkwell"}
    assert {s.resource.attributes["deployment.environment.name"] for s in spans} == {"test"}


async def test_server_spans_carry_the_stable_http_semantic_conventions(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    user = await sign_up(client)
    trace_id, _, header = traceparent()
    response = await client.get(f"/api/v1/users/{user['id']}", headers={"traceparent": header})
    assert response.status_code == 200

    server = only(in_trace(recorded_spans, trace_id), lambda s: s.kind == SpanKind.SERVER)
    attributes = dict(server.attributes)
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.path"] == f"/api/v1/users/{user['id']}"
    assert attributes["http.route"] == "/api/v1/users/{user_id}"
    assert server.name == "GET /api/v1/users/{user_id}"
    assert DEPRECATED_HTTP.isdisjoint(attributes), attributes


async def test_sql_spans_carry_the_stable_database_semantic_conventions(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter, backend: Backend
) -> None:
    trace_id, _, header = traceparent()
    await client.post("/api/v1/signup", json=signup_body(), headers={"traceparent": header})

    statements = [
        s
        for s in in_trace(recorded_spans, trace_id)
        if s.kind == SpanKind.CLIENT and "db.query.text" in (s.attributes or {})
    ]
    assert statements
    system = "postgresql" if backend.is_postgres else "sqlite"
    for span in statements:
        attributes = dict(span.attributes or {})
        assert attributes["db.system.name"] == system
        assert DEPRECATED_DB.isdisjoint(attributes), attributes
    assert any(str(s.attributes["db.query.text"]).startswith("INSERT") for s in statements)  # type: ignore[index]


async def test_queries_on_the_read_engine_are_traced(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    user = await sign_up(client)
    trace_id, _, header = traceparent()
    response = await client.get(f"/api/v1/users/{user['id']}", headers={"traceparent": header})
    assert response.status_code == 200

    spans = in_trace(recorded_spans, trace_id)
    use_case = only(spans, lambda s: s.name == "users.get")
    assert use_case.attributes["user.id"] == user["id"]
    selects = [s for s in spans if s.kind == SpanKind.CLIENT and s.name.startswith("SELECT")]
    assert selects, [s.name for s in spans]
    assert all(descends_from(select, use_case, spans) for select in selects)


async def test_probes_and_metrics_are_not_traced(
    client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    trace_id, _, header = traceparent()
    for path in ("/health", "/ready", "/metrics"):
        response = await client.get(path, headers={"traceparent": header})
        assert response.status_code == 200, path
    await sign_up(client)  # something is recorded, so the exporter is known to work

    assert recorded_spans.get_finished_spans()
    assert in_trace(recorded_spans, trace_id) == []


async def test_the_cache_s_redis_commands_get_client_spans(
    backend: Backend, client: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    if backend.redis_url is None:
        pytest.skip("this backend has no Redis")
    author = await sign_up(client)
    login = await client.post(
        "/api/v1/auth/login", json={"email": author["email"], "password": author["password"]}
    )
    created = await client.post(
        "/api/v1/content",
        json={"title": "Traced", "content": "A body long enough."},
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
    )
    trace_id, _, header = traceparent()
    await client.get(f"/api/v1/content/{created.json()['id']}", headers={"traceparent": header})

    spans = in_trace(recorded_spans, trace_id)
    # the read is a miss (the create invalidated it): the hot read's look-up, then the use case
    hot_read = only(spans, lambda s: s.name == "hot_read")
    use_case = only(spans, lambda s: s.name == "content.get")
    commands = [
        s
        for s in spans
        if s.kind == SpanKind.CLIENT and s.attributes.get("db.system.name") == "redis"
    ]
    assert commands, [s.name for s in spans]
    assert all(
        descends_from(command, use_case, spans) or descends_from(command, hot_read, spans)
        for command in commands
    )
    assert any(descends_from(command, use_case, spans) for command in commands)


async def test_an_instrumented_redis_client_gets_client_spans(
    backend: Backend, recorded_spans: InMemorySpanExporter
) -> None:
    if backend.redis_url is None:
        pytest.skip("this backend has no Redis")
    tracing = configure_tracing(backend.settings())
    client = redis.from_url(backend.redis_url)
    try:
        tracing.instrument_redis(client)
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            await client.ping()
    finally:
        await client.aclose()

    trace_id = format(caller.get_span_context().trace_id, "032x")
    ping = only(in_trace(recorded_spans, trace_id), lambda s: s.kind == SpanKind.CLIENT)
    assert ping.name == "PING"


def test_tracing_is_configured_once_per_process() -> None:
    first = configure_tracing(Settings.model_validate(BASE_SETTINGS))
    again = configure_tracing(
        Settings.model_validate({**BASE_SETTINGS, "otel_exporter_otlp_endpoint": "http://x:4318"})
    )
    assert again is first
    assert first.recording
    assert trace.get_tracer_provider() is first.provider


@pytest.mark.parametrize(
    "variable", ["otel_exporter_otlp_protocol", "otel_exporter_otlp_traces_protocol"]
)
@pytest.mark.parametrize("protocol", ["grpc", "http/json", "carrier-pigeon"])
def test_an_unsupported_otlp_protocol_is_refused(variable: str, protocol: str) -> None:
    with pytest.raises(ValidationError, match="http/protobuf"):
        Settings.model_validate({**BASE_SETTINGS, variable: protocol})


def test_the_otlp_protocol_defaults_to_http_protobuf() -> None:
    assert Settings.model_validate(BASE_SETTINGS).otlp_traces_protocol == "http/protobuf"
    explicit = Settings.model_validate(
        {**BASE_SETTINGS, "otel_exporter_otlp_protocol": "http/protobuf"}
    )
    assert explicit.otlp_traces_protocol == "http/protobuf"


# --- real server processes -----------------------------------------------------------------------


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'inkwell.db'}",
        "JWT_SECRET": "tracing-test-secret-long-enough-for-hs256-0123456789",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        **extra,
    }
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        env.setdefault(name, "")
    return env


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    from src.cli import migrate

    migrate(f"sqlite+aiosqlite:///{tmp_path / 'inkwell.db'}")
    return tmp_path


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.mark.slow
def test_a_server_process_exports_its_spans_over_otlp(
    migrated: Path, receiver: OtlpReceiver
) -> None:
    server = InkwellProcess(
        server_env(
            migrated, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="inkwell-otlp"
        ),
        migrated / "server.log",
    )
    trace_id, caller_span_id, header = traceparent()
    try:
        server.start()
        response = httpx.post(
            f"{server.url}/api/v1/signup",
            json=signup_body(),
            headers={"traceparent": header},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        server.signal(signal.SIGTERM)  # the lifespan's exit flushes the batch of spans
        assert server.wait(30) in (0, -signal.SIGTERM), server.output()
    finally:
        server.stop()

    spans: list[ReceivedSpan] = receiver.in_trace(trace_id)
    server_span = only(spans, lambda s: s.kind == SERVER)
    assert server_span.parent_span_id == caller_span_id
    assert server_span.attributes["http.route"] == "/api/v1/signup"
    assert server_span.attributes["http.request.method"] == "POST"
    assert server_span.attributes["http.response.status_code"] == 201
    assert any(s.name == "signup.execute" for s in spans)
    inserts = [s for s in spans if s.kind == CLIENT and "INSERT" in s.name]
    assert inserts
    assert all(s.attributes["db.system.name"] == "sqlite" for s in inserts)
    assert {s.resource["service.name"] for s in spans} == {"inkwell-otlp"}
    assert set(receiver.paths) == {"/v1/traces"}


@pytest.mark.slow
def test_without_an_endpoint_a_server_records_nothing_but_logs_carry_the_trace_id(
    migrated: Path,
) -> None:
    server = InkwellProcess(server_env(migrated), migrated / "server.log")
    trace_id, _, header = traceparent()
    try:
        server.start()
        response = httpx.get(
            f"{server.url}/api/v1/users", headers={"traceparent": header}, timeout=10
        )
        assert response.status_code == 200
        metrics = httpx.get(
            f"{server.url}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            timeout=10,
        )
    finally:
        server.stop()
    access = [
        json.loads(line)
        for line in server.output().splitlines()
        if '"http.access"' in line and "/api/v1/users" in line
    ]
    assert access, server.output()
    assert access[-1]["trace_id"] == trace_id
    assert "trace_id=" not in metrics.text  # nothing exported, so no exemplar to jump to


def test_without_an_endpoint_the_process_installs_no_instrumentation(tmp_path: Path) -> None:
    """Checked in a fresh interpreter: the test process itself records into memory."""
    program = (
        "from opentelemetry import trace\n"
        "from src.main import create_app\n"
        "from src.observability.tracing import configure_tracing\n"
        "from src.settings import Settings\n"
        "settings = Settings()\n"
        "tracing = configure_tracing(settings)\n"
        "app = create_app(settings)\n"
        "print(tracing.recording, type(trace.get_tracer_provider()).__name__,\n"
        "      getattr(app, '_is_instrumented_by_opentelemetry', False))\n"
    )
    env = {**os.environ, **server_env(tmp_path), "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "NoOpTracerProvider", "False"]


def test_serve_refuses_an_unsupported_otlp_protocol_at_start_up(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **server_env(tmp_path, OTEL_EXPORTER_OTLP_PROTOCOL="grpc"),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-m", "src.cli", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in result.stderr
    assert "'grpc' is not supported" in result.stderr
    assert "Traceback" not in result.stderr
