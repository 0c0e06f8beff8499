"""The request envelope (pure ASGI): ids, the access line, HTTP metrics, last-resort errors.

* `X-Request-ID` / `X-Correlation-ID`: echoed when sane (1–128 visible ASCII characters),
  otherwise replaced by a fresh id — a hostile value is never echoed or logged. Both live in
  context variables for log lines, spans and problem bodies, and go out on every response.
* One access line per request (method, route template, status, duration_ms, client) and the
  `http_server_request_duration_seconds` histogram, labelled by route template (never by the
  raw path), with the trace id as exemplar.
* Any exception that escapes the application becomes a problem response here (503 for an
  unreachable dependency, 500 otherwise), so even crashes carry the request id and headers.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from loguru import logger
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.core.context import correlation_id_var, request_id_var
from src.core.errors.problems import send_error, unexpected
from src.middleware.routes import route_template

_REQUEST_ID = b"x-request-id"
_CORRELATION_ID = b"x-correlation-id"
_TRACEPARENT = b"traceparent"
_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})


def sane_id(raw: bytes | None) -> str | None:
    """`raw` if it is 1–128 visible ASCII characters, else None."""
    if raw is None or not 0 < len(raw) <= 128:
        return None
    if all(0x21 <= byte <= 0x7E for byte in raw):
        return raw.decode("ascii")
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming_request_id = incoming_correlation_id = traceparent = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                incoming_request_id = value
            elif name == _CORRELATION_ID:
                incoming_correlation_id = value
            elif name == _TRACEPARENT:
                traceparent = value
        request_id = sane_id(incoming_request_id) or uuid.uuid4().hex
        correlation_id = sane_id(incoming_correlation_id) or request_id
        id_headers = [
            (b"x-request-id", request_id.encode()),
            (b"x-correlation-id", correlation_id.encode()),
        ]
        request_token = request_id_var.set(request_id)
        correlation_token = correlation_id_var.set(correlation_id)
        state = scope["app"].state if "app" in scope else None
        tracing = getattr(state, "tracing", None)
        binding = tracing.bind(traceparent) if tracing is not None else None
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("inkwell.request_id", request_id)
            span.set_attribute("inkwell.correlation_id", correlation_id)

        runtime = getattr(state, "runtime", None)
        metrics = runtime.metrics if runtime is not None else None
        status = 500
        started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *id_headers]
            await send(message)

        start = time.perf_counter()
        if metrics is not None:
            metrics.active_requests.inc()
        try:
            await self.app(scope, receive, send_with_ids)
        except Exception as error:
            if started:  # the answer is half-sent: all that is left is to log and cut it
                logger.opt(exception=error).error("error after the response started")
                raise
            await send_error(send_with_ids, scope, unexpected(error))
        finally:
            duration = time.perf_counter() - start
            if metrics is not None:
                metrics.active_requests.dec()
            self._record(scope, status, duration, metrics)
            if tracing is not None and binding is not None:
                tracing.unbind(binding)
            request_id_var.reset(request_token)
            correlation_id_var.reset(correlation_token)

    @staticmethod
    def _record(scope: Scope, status: int, duration: float, metrics: Any) -> None:
        route = route_template(scope)
        method = scope["method"]
        if metrics is not None:
            context = trace.get_current_span().get_span_context()
            exemplar = None
            # Only a sampled trace was exported, so only it is worth jumping to.
            if context.is_valid and context.trace_flags.sampled and not metrics.multiprocess:
                exemplar = {"trace_id": format(context.trace_id, "032x")}
            metrics.request_duration.labels(method, route, str(status)).observe(
                duration, exemplar=exemplar
            )
        client = scope.get("client")
        level = "DEBUG" if scope.get("path") in _QUIET_PATHS else "INFO"
        logger.bind(
            event="http.access",
            method=method,
            route=route,
            status=status,
            duration_ms=round(duration * 1000, 2),
            client=client[0] if client else None,
        ).log(level, "{} {} {}", method, route, status)
