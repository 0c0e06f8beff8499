"""Observability around the AI provider port: GenAI spans and the `ai_*` metrics.

`core` imports no observability module, so the instrumentation is wrapped around the port at
wiring (`src/main.py`):

* `InstrumentedProvider(provider)` — an `AIProvider` that records one client span per call,
  named `chat {model}` with the OpenTelemetry GenAI attributes (`gen_ai.system`,
  `gen_ai.operation.name` = `chat`, `gen_ai.request.model`, `gen_ai.response.model`,
  `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`); a failure sets the span's error
  status and `error.type` (the failure's reason, which never holds the key). No message
  content is recorded.
* `MetricsObserver(metrics)` — the gateway's `AIObserver`: `ai_requests_total{provider,
  operation, outcome}`, `ai_tokens_total{provider, kind}` and the provider's time,
  `ai_request_duration_seconds{provider, operation, outcome}`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from src.core.ai.gateway import Operation, Outcome
from src.core.ai.port import AIProvider, AIUnavailable, ChatMessage, Completion
from src.observability.metrics import Metrics

tracer = trace.get_tracer("inkwell.ai")

# gen_ai.system values of the semantic conventions; `openai` is the wire protocol spoken.
_SYSTEMS = {"openai": "openai", "offline": "inkwell"}


class InstrumentedProvider:
    def __init__(self, inner: AIProvider) -> None:
        self._inner = inner
        self.name = inner.name
        self.model = inner.model

    @property
    def inner(self) -> AIProvider:
        return self._inner

    def __repr__(self) -> str:
        return f"InstrumentedProvider({self._inner!r})"

    def _span(self, streaming: bool) -> trace.Span:
        span = tracer.start_span(f"chat {self.model}", kind=SpanKind.CLIENT)
        span.set_attribute("gen_ai.system", _SYSTEMS.get(self.name, self.name))
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", self.model)
        span.set_attribute("inkwell.ai.provider", self.name)
        span.set_attribute("inkwell.ai.streaming", streaming)
        return span

    @staticmethod
    def _finish(span: trace.Span, completion: Completion) -> None:
        span.set_attribute("gen_ai.response.model", completion.model)
        span.set_attribute("gen_ai.usage.input_tokens", completion.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", completion.completion_tokens)

    @staticmethod
    def _fail(span: trace.Span, error: AIUnavailable) -> None:
        span.set_attribute("error.type", "ai_unavailable")
        span.set_attribute("inkwell.ai.failure", error.reason)
        span.set_status(Status(StatusCode.ERROR, error.reason))

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        span = self._span(streaming=False)
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                completion = await self._inner.complete(messages)
            self._finish(span, completion)
            return completion
        except AIUnavailable as error:
            self._fail(span, error)
            raise
        finally:
            span.end()

    async def stream(
        self, messages: Sequence[ChatMessage]
    ) -> AsyncGenerator[str | Completion, None]:
        # The span is not made current: a context attached inside an async generator would
        # leak into the consumer between chunks.
        span = self._span(streaming=True)
        first = True
        try:
            async with contextlib.aclosing(self._inner.stream(messages)) as pieces:
                async for piece in pieces:
                    if isinstance(piece, Completion):
                        self._finish(span, piece)
                    elif first:
                        span.add_event("gen_ai.first_token")
                        first = False
                    yield piece
        except AIUnavailable as error:
            self._fail(span, error)
            raise
        finally:
            span.end()

    async def ping(self) -> None:
        await self._inner.ping()

    async def aclose(self) -> None:
        await self._inner.aclose()


class MetricsObserver:
    def __init__(self, metrics: Metrics) -> None:
        self._requests = metrics.ai_requests
        self._durations = metrics.ai_request_duration
        self._tokens = metrics.ai_tokens

    def requested(
        self, provider: str, operation: Operation, outcome: Outcome, seconds: float | None
    ) -> None:
        self._requests.labels(provider, operation, outcome).inc()
        if seconds is not None:
            self._durations.labels(provider, operation, outcome).observe(seconds)

    def used(self, provider: str, completion: Completion) -> None:
        self._tokens.labels(provider, "prompt").inc(completion.prompt_tokens)
        self._tokens.labels(provider, "completion").inc(completion.completion_tokens)
