"""The edge (pure ASGI): the application's outermost layer, with one `send` wrapper.

Every answer — an endpoint's, another layer's (429, 409, a replay), and the ones the edge
renders itself (413, a crash's 500 or 503) — leaves through `deliver`, the one place that adds
the request ids and the security headers and records the status. So every status carries them.

* `X-Request-ID` / `X-Correlation-ID`: echoed when sane (1–128 visible ASCII characters),
  otherwise replaced by a fresh id — a hostile value is never echoed or logged. Both live in
  context variables for log lines, spans and problem bodies.
* Security headers: `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy`, a
  Content-Security-Policy that allows nothing for the API (JSON) and what the interactive docs
  need on their pages; `Strict-Transport-Security` only over HTTPS.
* One access line per request (method, route template, status, duration_ms, client) and the
  `http_server_request_duration_seconds` histogram, labelled by route template (never the raw
  path) and by method — `_OTHER` for a method outside HTTP's registered set, as OpenTelemetry
  says, so a client cannot mint label values. A request whose client went away before any
  answer is recorded as 499 (nginx's "client closed request"), not as a server error.
* The body limit (`MAX_BODY_BYTES`, 1 MiB): 413 `payload_too_large` at once when
  `Content-Length` says so, otherwise as soon as the streamed body crosses it — the body is never
  read whole first. Whatever the application answers after the limit tripped (a parser may have
  wrapped the error) becomes that 413; and a 400/422 given before the body was read to its end
  waits for the rest, up to the limit, so a body over it is a 413 on every route whichever
  check fails first.
* `HEAD` is answered wherever `GET` is (RFC 9110 §9.3.2): the application serves the GET, the
  edge drops the body. A 405's `Allow` lists every method the path answers.
* Any exception that escapes the application becomes a problem answer here (503 for an
  unreachable dependency, 500 otherwise). It is logged once: `unexpected()` marks what it has
  logged, so a crash another layer already logged and answered is not logged again.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.core.context import correlation_id_var, fresh_request_id, request_id_var
from src.core.errors.problems import send_error, send_problem, unexpected
from src.middleware.routes import allowed_methods, route_template
from src.observability.logging import access_line

Header = tuple[bytes, bytes]

API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The docs' assets are served by Inkwell itself (src/docs_ui.py): no third-party origin.
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
SECURITY_HEADERS: tuple[Header, ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")

# HTTP's registered methods that OpenTelemetry names; any other is `_OTHER` in metrics.
KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
CLIENT_CLOSED = 499

_REQUEST_ID = b"x-request-id"
_CORRELATION_ID = b"x-correlation-id"
_TRACEPARENT = b"traceparent"
_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})
# Answers that may only mean "the part of the body read so far did not parse".
_BODY_REFUSALS = frozenset({400, 422})


def sane_id(raw: bytes | None) -> str | None:
    """`raw` if it is 1–128 visible ASCII characters, else None."""
    if raw is None or not 0 < len(raw) <= 128:
        return None
    if all(0x21 <= byte <= 0x7E for byte in raw):
        return raw.decode("ascii")
    return None


def security_headers(path: str, scheme: str | None) -> list[Header]:
    """The security headers of an answer at `path` (also for the server's own answers)."""
    headers = [
        *SECURITY_HEADERS,
        (b"content-security-policy", DOCS_CSP if path in DOCS_PATHS else API_CSP),
    ]
    if scheme == "https":
        headers.append(_HSTS)
    return headers


def metric_method(method: str) -> str:
    return method if method in KNOWN_METHODS else "_OTHER"


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive`; FastAPI re-raises HTTP exceptions, so this becomes a 413."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


class _Exchange:
    """What the edge knows about one request and its answer so far."""

    __slots__ = (
        "body_done",
        "client_left",
        "finished",
        "received",
        "replaced",
        "started",
        "status",
        "too_large",
    )

    def __init__(self) -> None:
        self.status = 500
        self.started = False  # the answer's start went out
        self.finished = False  # ... and its last body part
        self.replaced = False  # the application's answer is dropped for the edge's own
        self.received = 0
        self.body_done = False
        self.too_large = False
        self.client_left = False  # the client went away before any answer started

    @property
    def recorded_status(self) -> int:
        if self.client_left:
            return CLIENT_CLOSED
        return self.status


class Edge:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming_request_id = incoming_correlation_id = traceparent = declared = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                incoming_request_id = value
            elif name == _CORRELATION_ID:
                incoming_correlation_id = value
            elif name == _TRACEPARENT:
                traceparent = value
            elif name == b"content-length" and declared is None:
                declared = value
        request_id = sane_id(incoming_request_id) or fresh_request_id()
        correlation_id = sane_id(incoming_correlation_id) or request_id
        extra = [
            *security_headers(scope["path"], scope.get("scheme")),
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

        head = scope["method"] == "HEAD"
        inner = scope
        if head and "GET" in allowed_methods(scope):
            inner = {**scope, "method": "GET"}  # a copy: the server still knows it is a HEAD
        exchange = _Exchange()
        limit = self.max_body_bytes

        async def deliver(message: Message) -> None:
            """The one place headers are added and the answer is recorded."""
            if message["type"] == "http.response.start":
                exchange.started = True
                exchange.status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            elif message["type"] == "http.response.body":
                if head and message.get("body"):
                    message = {**message, "body": b""}
                if not message.get("more_body", False):
                    exchange.finished = True
            await send(message)

        async def edge_receive() -> Message:
            if exchange.too_large:
                raise _BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                exchange.received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    exchange.body_done = True
                if exchange.received > limit:
                    exchange.too_large = True
                    raise _BodyTooLarge()
            elif message["type"] == "http.disconnect" and not exchange.started:
                exchange.client_left = True
            return message

        async def edge_send(message: Message) -> None:
            if exchange.replaced:
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                if status in _BODY_REFUSALS and not exchange.body_done:
                    await _read_rest(edge_receive, exchange)
                if exchange.too_large and status != 413:
                    exchange.replaced = True  # drop the application's answer for the 413
                    await self._too_large(deliver, scope)
                    return
                if status == 405:
                    message["headers"] = _with_allow(message.get("headers", ()), scope)
            await deliver(message)

        start = time.perf_counter()
        if metrics is not None:
            metrics.active_requests.inc()
        try:
            if declared is not None and _length(declared) > limit:
                await self._too_large(deliver, scope)
                return
            await self.app(inner, edge_receive, edge_send)
        except _BodyTooLarge:  # raised where a layer read the body itself (the boundary)
            if not exchange.started:
                await self._too_large(deliver, scope)
        except Exception as error:
            answer = unexpected(error)  # logged once, whoever saw it first
            if not exchange.started:
                await send_error(deliver, scope, answer)
            # else: the answer is out, or half out — nothing more can be sent; a half-sent
            # answer is cut by the server (the application returned without finishing it)
        finally:
            duration = time.perf_counter() - start
            if metrics is not None:
                metrics.active_requests.dec()
            self._record(inner, exchange.recorded_status, duration, metrics, scope["method"], span)
            if tracing is not None and binding is not None:
                tracing.unbind(binding)
            request_id_var.reset(request_token)
            correlation_id_var.reset(correlation_token)

    async def _too_large(self, deliver: Send, scope: Scope) -> None:
        await send_problem(
            deliver,
            scope,
            413,
            "payload_too_large",
            f"The request body is larger than {self.max_body_bytes} bytes.",
            [(b"connection", b"close")],
        )

    @staticmethod
    def _record(
        scope: Scope, status: int, duration: float, metrics: Any, method: str, span: trace.Span
    ) -> None:
        route = route_template(scope)
        context = span.get_span_context()  # the request's: current at its start and end alike
        if metrics is not None:
            exemplar = None
            # Only a sampled trace was exported, so only it is worth jumping to.
            if context.is_valid and context.trace_flags.sampled and not metrics.multiprocess:
                exemplar = {"trace_id": format(context.trace_id, "032x")}
            metrics.request_durations(metric_method(method), route, str(status)).observe(
                duration, exemplar=exemplar
            )
        client = scope.get("client")
        level = "DEBUG" if scope.get("path") in _QUIET_PATHS else "INFO"
        access_line(
            level,
            __name__,
            method,
            route,
            status,
            round(duration * 1000, 2),
            client[0] if client else None,
            context,
        )


async def _read_rest(receive: Receive, exchange: _Exchange) -> None:
    """Read what is left of the body (at most up to the limit): is it over the limit?"""
    try:
        while not exchange.body_done and not exchange.client_left:
            if (await receive())["type"] == "http.disconnect":
                return
    except _BodyTooLarge:
        pass


def _with_allow(headers: Any, scope: Scope) -> list[Header]:
    allow = ", ".join(sorted(allowed_methods(scope))).encode()
    return [*((name, value) for name, value in headers if name != b"allow"), (b"allow", allow)]


def _length(raw: bytes) -> int:
    try:
        return int(raw)
    except ValueError:
        return -1
