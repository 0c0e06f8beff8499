"""Traces with OpenTelemetry: one tracer provider per application, created in its lifespan.

* A request gets a server span from the FastAPI instrumentation (the probes and `/metrics` are
  excluded), joining the caller's trace when it sends a W3C `traceparent`. SQL statements on
  both engines and Redis commands get client spans; use cases open their own spans through
  `trace.get_tracer(__name__)` (`signup.execute`, `users.get`, …).
* Spans are exported over OTLP/HTTP (protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (read in `src/settings.py`). The SDK reads its
  other standard variables itself: `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_EXPORTER_OTLP_HEADERS`,
  `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`. Without an endpoint
  spans are never recorded (sampler off, no exporter, no SQL or Redis instrumentation), but a
  request still carries a trace id — the caller's, when it sent one — so log lines of one
  request can be tied together.
* The provider lives in the application, not in the process-wide OpenTelemetry global, which
  can be set only once: several applications (the tests build one per test) each export to
  their own place. Module-level tracers (`trace.get_tracer(__name__)`) reach the provider of
  the application serving the current request through a small router that is installed as
  the global provider on first start-up; `RequestContextMiddleware` binds the application's
  provider for the duration of each request.
* `shutdown()` (lifespan exit) flushes pending spans and stops the exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from loguru import logger
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.instrumentation.sqlalchemy.version import __version__ as _sql_instr_version
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from sqlalchemy.ext.asyncio import AsyncEngine

from src import __version__
from src.settings import Settings

_PROPAGATOR = TraceContextTextMapPropagator()
_IDS = RandomIdGenerator()
_Binding = tuple[
    contextvars.Token[trace.TracerProvider | None] | None, contextvars.Token[Any] | None
]

# Requests to these paths get no server span (they are polled every few seconds).
UNTRACED_PATHS_REGEX = r"^[a-z]+://[^/]+/(?:health|ready|metrics)$"

_bound_provider: contextvars.ContextVar[trace.TracerProvider | None] = contextvars.ContextVar(
    "inkwell_tracer_provider", default=None
)
# Bound for a request of an application that exports nothing: its spans get no provider.
_NOTHING: trace.TracerProvider = trace.NoOpTracerProvider()
# Providers of the exporting applications whose lifespan is running in this process.
_running: list[trace.TracerProvider] = []


class _CurrentSpanTracer(trace.Tracer):
    """The tracer of an application that exports nothing: "starting" a span hands back the
    request's current (non-recording) span. Attributes set on it are dropped, log lines keep
    the request's trace id, and a use-case span costs next to nothing."""

    def start_span(self, name: str, context: Any = None, *args: Any, **kwargs: Any) -> trace.Span:
        return trace.get_current_span(context)

    @contextlib.contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: Any = None, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        yield trace.get_current_span(context)


_CURRENT_SPAN_TRACER = _CurrentSpanTracer()


class _DelegatingTracer(trace.Tracer):
    """A tracer that asks, for every span, which provider it should come from."""

    def __init__(
        self,
        resolve: Callable[[], trace.TracerProvider | None],
        name: str,
        version: str | None,
        schema_url: str | None,
        attributes: Attributes,
    ) -> None:
        self._resolve = resolve
        self._scope = (name, version, schema_url, attributes)
        self._cache: tuple[trace.TracerProvider | None, trace.Tracer] = (
            None,
            _CURRENT_SPAN_TRACER,
        )

    def _target(self) -> trace.Tracer:
        provider = self._resolve()
        cached_provider, tracer = self._cache
        if provider is cached_provider:
            return tracer
        tracer = _CURRENT_SPAN_TRACER if provider is None else provider.get_tracer(*self._scope)
        self._cache = (provider, tracer)
        return tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._target().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._target().start_as_current_span(*args, **kwargs)


class _DelegatingTracerProvider(trace.TracerProvider):
    def __init__(self, resolve: Callable[[], trace.TracerProvider | None]) -> None:
        self._resolve = resolve

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace.Tracer:
        return _DelegatingTracer(
            self._resolve,
            instrumenting_module_name,
            instrumenting_library_version,
            schema_url,
            attributes,
        )


def _route_module_tracers() -> trace.TracerProvider | None:
    """The provider bound to the current request, else the process's only running one."""
    provider = _bound_provider.get()
    if provider is _NOTHING:
        return None
    if provider is not None:
        return provider
    running = _running
    return running[0] if len(running) == 1 else None


def _install_global_router() -> None:
    current = trace.get_tracer_provider()
    if isinstance(current, _DelegatingTracerProvider):
        return
    if not isinstance(current, trace.ProxyTracerProvider):
        logger.warning("a global tracer provider is already set; use-case spans go to it")
        return
    trace.set_tracer_provider(_DelegatingTracerProvider(_route_module_tracers))


class Tracing:
    """One application's tracing. `instrument_app` at build time, `start`/`shutdown` in the
    lifespan, `bind`/`unbind` around each request."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._provider: SdkTracerProvider | None = None
        # Handed to the FastAPI instrumentation before the provider exists (the middleware
        # stack is built before the lifespan runs); it resolves the provider per span.
        self.tracer_provider: trace.TracerProvider = _DelegatingTracerProvider(self._resolve)

    @property
    def exporting(self) -> bool:
        return self._settings.otlp_traces_endpoint is not None

    @property
    def provider(self) -> SdkTracerProvider | None:
        return self._provider

    def _resolve(self) -> trace.TracerProvider | None:
        bound = _bound_provider.get()
        return None if bound is _NOTHING else (bound or self._provider)

    def instrument_app(self, app: FastAPI) -> None:
        """Server spans, only when they are exported: without an endpoint the request-context
        middleware sets a non-recording trace context instead (`bind`), which costs a fraction
        of the ASGI instrumentation's per-request work."""
        if not self.exporting:
            return
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.tracer_provider,
            meter_provider=NoOpMeterProvider(),  # HTTP metrics come from prometheus-client
            excluded_urls=UNTRACED_PATHS_REGEX,
            exclude_spans=["receive", "send"],
        )

    def start(self, engines: Iterable[AsyncEngine]) -> None:
        """Create the provider (and the exporter when an endpoint is set); trace SQL."""
        settings = self._settings
        resource = Resource.create(
            {
                SERVICE_NAME: settings.service_name,
                SERVICE_VERSION: __version__,
                "deployment.environment": settings.app_env,
                "deployment.environment.name": settings.app_env,
            }
        )
        endpoint = settings.otlp_traces_endpoint
        if endpoint is None:
            provider = SdkTracerProvider(resource=resource, sampler=ALWAYS_OFF,
                                         shutdown_on_exit=False)  # fmt: skip
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
            provider = SdkTracerProvider(resource=resource, shutdown_on_exit=False)
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
            sql_tracer = provider.get_tracer(
                "opentelemetry.instrumentation.sqlalchemy", _sql_instr_version
            )
            usage = (
                NoOpMeterProvider()
                .get_meter("opentelemetry.instrumentation.sqlalchemy")
                .create_up_down_counter("db.client.connections.usage")
            )
            for engine in engines:
                EngineTracer(sql_tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]
            logger.info("exporting traces over OTLP to {}", endpoint)
        self._provider = provider
        if self.exporting:  # an application that exports nothing gives its spans no provider
            _running.append(provider)
        _install_global_router()

    def instrument_redis(self, client: Any) -> None:
        """Give a Redis client (created in the lifespan, after `start`) client spans."""
        if self._provider is not None and self.exporting:
            RedisInstrumentor.instrument_client(client, tracer_provider=self._provider)

    def bind(self, traceparent: bytes | None) -> _Binding:
        """For one request: route module-level tracers to this application's provider and,
        when nothing is exported (no server span), give the request a trace context of its own
        — the caller's trace id when it sent a valid `traceparent` — so its log lines carry a
        trace id. Undo with `unbind`."""
        if self.exporting:
            provider_token = None if self._provider is None else _bound_provider.set(self._provider)
            return provider_token, None
        provider_token = _bound_provider.set(_NOTHING)
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
        return provider_token, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def unbind(binding: _Binding) -> None:
        provider_token, context_token = binding
        if context_token is not None:
            otel_context.detach(context_token)
        if provider_token is not None:
            _bound_provider.reset(provider_token)

    async def shutdown(self) -> None:
        """Flush pending spans and stop exporting (off the event loop: it may wait on I/O)."""
        provider, self._provider = self._provider, None
        if provider is None:
            return
        if provider in _running:
            _running.remove(provider)
        await asyncio.to_thread(provider.shutdown)
