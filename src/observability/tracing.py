"""Traces with OpenTelemetry: one tracer provider per process, configured once at start-up.

* `configure_tracing(settings)` runs once per process, before any application is built:
  `inkwell serve` calls it in each worker (`src.main:create_served_app`), the test session in
  `tests/conftest.py`. It sets the process's tracer provider with `trace.set_tracer_provider`
  and installs the instrumentations through their public APIs. Later calls return the state
  the first one set.
* With an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
  read in `src/settings.py`; protocol `http/protobuf`), spans go through a batch processor to
  the OTLP/HTTP exporter. The SDK reads its other standard variables itself:
  `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
  `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`. A request gets a server span (the FastAPI
  instrumentation; the probes and `/metrics` excluded), joining the caller's trace when it
  sends a W3C `traceparent`; SQL statements and Redis commands get client spans; use cases open
  their own spans with `trace.get_tracer(__name__)`. Spans follow the stable HTTP and database
  semantic conventions (`OTEL_SEMCONV_STABILITY_OPT_IN`, default `http,database`).
* Without an endpoint the process's provider is the API's no-op provider: no span is ever
  created, no instrumentation is installed, and a use-case span is the request's current span
  handed back. Each request still gets a trace context of its own (`bind`: the caller's trace
  id when it sent a valid `traceparent`, a fresh one otherwise), so its log lines carry a
  trace id.
* `flush()` (each application's lifespan exit) pushes pending spans out; the SDK shuts the
  provider down when the process exits.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from loguru import logger
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from src import __version__
from src.settings import Settings

# Requests to these paths get no server span (they are polled every few seconds).
UNTRACED_PATHS_REGEX = r"^[a-z]+://[^/]+/(?:health|ready|metrics)$"
# The variable the instrumentation libraries read to choose their attribute names.
_SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"

_PROPAGATOR = TraceContextTextMapPropagator()
_IDS = RandomIdGenerator()
# No meter: HTTP and pool metrics come from prometheus-client (src/observability/metrics.py).
_NO_METERS = NoOpMeterProvider()


@dataclass(frozen=True)
class ProcessTracing:
    """What `configure_tracing` set up for this process."""

    provider: trace.TracerProvider
    recording: bool  # spans are recorded and exported (a server span per request)

    def instrument_app(self, app: FastAPI) -> None:
        """Give an application server spans (outermost layer), when spans are recorded."""
        if not self.recording:
            return
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            meter_provider=_NO_METERS,
            excluded_urls=UNTRACED_PATHS_REGEX,
            exclude_spans=["receive", "send"],
        )

    def instrument_redis(self, client: Any) -> None:
        """Give a Redis client client spans, when spans are recorded."""
        if self.recording:
            RedisInstrumentor.instrument_client(client, tracer_provider=self.provider)

    def bind(self, traceparent: bytes | None) -> object | None:
        """For one request of a process that records nothing (so no server span exists): a
        non-recording span carrying the caller's trace id, or a fresh one, made current so
        log lines of the request carry it. Undo with `unbind`. Recording processes: None."""
        if self.recording:
            return None
        parent = None
        if traceparent is not None:
            extracted = _PROPAGATOR.extract({"traceparent": traceparent.decode("latin-1")})
            parent = trace.get_current_span(extracted).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
        else:
            trace_id = _IDS.generate_trace_id()
        span = trace.NonRecordingSpan(
            trace.SpanContext(trace_id, _IDS.generate_span_id(), is_remote=False)
        )
        return otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def unbind(binding: Any) -> None:
        otel_context.detach(binding)

    async def flush(self) -> None:
        """Push pending spans to the exporter (off the event loop: it may wait on I/O)."""
        force_flush = getattr(self.provider, "force_flush", None)
        if self.recording and force_flush is not None:
            await asyncio.to_thread(force_flush)


_lock = threading.Lock()
_configured: ProcessTracing | None = None


def configure_tracing(
    settings: Settings, *, span_processor: SpanProcessor | None = None
) -> ProcessTracing:
    """Set this process's tracer provider and instrumentations; idempotent.

    `span_processor` replaces the OTLP exporter (the tests hand in an in-memory one); without
    it spans are recorded only when an OTLP endpoint is configured.
    """
    global _configured
    with _lock:
        if _configured is not None:
            return _configured
        processor = span_processor or _otlp_processor(settings)
        if processor is None:
            provider: trace.TracerProvider = trace.NoOpTracerProvider()
        else:
            # Read by the instrumentations the first time they are used, which is below.
            os.environ[_SEMCONV_OPT_IN] = settings.otel_semconv_stability_opt_in
            # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
            sdk = TracerProvider(resource=_resource(settings))
            sdk.add_span_processor(processor)
            provider = sdk
        trace.set_tracer_provider(provider)
        if processor is not None:
            # Every engine created from now on gets client spans for its statements (the
            # engines look `create_async_engine` up at call time, see src/core/db/engines.py).
            # The instrumentation declares `sqlalchemy < 2.1` and would refuse 2.1 without a
            # word but a log line; its events are unchanged in 2.1 (the tracing tests prove
            # the spans), so the declared range is not checked.
            SQLAlchemyInstrumentor().instrument(
                tracer_provider=provider, meter_provider=_NO_METERS, skip_dep_check=True
            )
        _configured = ProcessTracing(provider, recording=processor is not None)
        return _configured


def _resource(settings: Settings) -> Resource:
    return Resource.create(
        {
            SERVICE_NAME: settings.service_name,
            SERVICE_VERSION: __version__,
            "deployment.environment": settings.app_env,
            "deployment.environment.name": settings.app_env,
        }
    )


def _otlp_processor(settings: Settings) -> SpanProcessor | None:
    endpoint = settings.otlp_traces_endpoint
    if endpoint is None:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    logger.info("exporting traces over OTLP/HTTP (http/protobuf) to {}", endpoint)
    return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
