"""The HTTP server `inkwell serve` runs: uvicorn (uvloop, httptools), and the limits a client
meets before any byte reaches the application.

httptools has no limit of its own on the request head, and uvicorn arms no timer until a first
answer has gone out, so without these a client could send one 128 MiB header (seconds of
parsing, hundreds of MiB, every other request on the worker stalled meanwhile), or open
sockets and send nothing, or one header line every few seconds, and hold them for ever. Per
connection, `GuardedHttpToolsProtocol` adds:

* **Head size** (`HTTP_MAX_HEADER_BYTES`, 32 KiB): the request line and headers are counted
  as they arrive and fed to the parser in slices that never take it past the limit; one byte
  more and the answer is 431 before the parser has grown. (A request that follows another in
  the same read — pipelining — is counted from the next read on: it may exceed the limit by at
  most one read, 256 KiB.)
* **Head timeout** (`HTTP_HEADER_TIMEOUT_SECONDS`, 10 s): from the connection's first moment
  (or the first byte of a further request on it) until its head is complete, whatever trickles
  in meanwhile. A silent socket, or a slowloris sending one line every few seconds, gets a 408
  and is closed.
* **Body timeout** (`HTTP_BODY_TIMEOUT_SECONDS`, 30 s): from the end of the head until the end
  of the body. The application's `receive` then sees the client gone (nothing runs on half a
  body), and the client gets a 408.
* **Keep-alive timeout** (`HTTP_KEEPALIVE_TIMEOUT_SECONDS`, 5 s): an idle connection between
  requests is closed (uvicorn's own timer).
* **Connections per worker** (`HTTP_MAX_CONNECTIONS`, 1000): one more is answered 503 with
  `Retry-After: 1` at once and closed, so a flood of idle sockets cannot take the worker's
  file descriptors or memory.

These answers (and the parser's 400 for malformed framing) are the server's own, rendered
here, not by the application: `application/problem+json` with the security headers, an
`X-Request-ID`, and `Connection: close`; each is logged as one `http.refused` line. They are
not in the request metrics (no route was reached). After answering, the server stops reading
the request, keeps the socket half-open for up to `LINGER_SECONDS` while discarding what still
arrives (so the client can read the answer instead of a reset), then closes it.
WebSockets are off: Inkwell serves none.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from loguru import logger
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from src.core.context import fresh_request_id, request_id_var
from src.core.errors.problems import PROBLEM_CONTENT_TYPE, problem_body
from src.middleware.edge import security_headers
from src.settings import Settings

Header = tuple[bytes, bytes]
LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_head_bytes: int
    head_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_head_bytes=settings.http_max_header_bytes,
            head_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            max_connections=settings.http_max_connections,
        )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded head, deadlines and a connection bound."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._in_head = True  # the bytes now arriving belong to a request's head
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False  # answered by the server itself: the rest is discarded
        self._linger: asyncio.TimerHandle | None = None

    # --- the connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(
                503,
                "service_unavailable",
                "The server has too many open connections; retry shortly.",
                [(b"retry-after", b"1")],
            )
            return
        self._arm(self.limits.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        while data:
            if not self._in_head:
                super().data_received(data)
                return
            if self._deadline is None:  # bytes of a further request: its head is on the clock
                self._arm(self.limits.head_timeout, self._head_timed_out)
            room = self.limits.max_head_bytes - self._head_bytes
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self._refused or self.transport.is_closing():
                return
            if self._in_head and self._head_bytes >= self.limits.max_head_bytes:
                self._refuse(
                    431,
                    "request_header_fields_too_large",
                    f"The request line and headers are larger than "
                    f"{self.limits.max_head_bytes} bytes.",
                )
                return

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "bad_request", "The request is not valid HTTP/1.1.")

    # --- the parser's progress through a request -------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        if self._deadline is None:
            self._arm(self.limits.head_timeout, self._head_timed_out)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._in_head = False
        self._head_bytes = 0
        self._arm(self.limits.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._in_head = True
        self._head_bytes = 0

    # --- deadlines ---------------------------------------------------------------------

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        self._refuse(
            408,
            "request_timeout",
            f"The request line and headers did not arrive within "
            f"{self.limits.head_timeout:g} seconds.",
        )

    def _body_timed_out(self) -> None:
        self._deadline = None
        if self.pipeline:  # queued behind a running request: reading is paused, not slow
            self._arm(self.limits.body_timeout, self._body_timed_out)
            return
        self._refuse(
            408,
            "request_timeout",
            f"The request body did not arrive within {self.limits.body_timeout:g} seconds.",
        )

    # --- the server's own answers ---------------------------------------------------

    def _refuse(self, status: int, code: str, detail: str, headers: Sequence[Header] = ()) -> None:
        """Answer `status`, stop reading requests, and close once the client had time to read.

        A request whose body is being read when this happens never runs: its application sees
        the client gone. An earlier request's answer still being sent is the connection's last
        one, and is not interrupted.
        """
        self._refused = True
        self._disarm()
        client = self.client[0] if self.client else None
        logger.bind(event="http.refused", status=status, reason=code, client=client).warning(
            "{} {}: {}", status, code, detail
        )
        cycle = self.cycle
        in_body = cycle is not None and not self._in_head
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started or not in_body:
                # an answer is on its way (or an earlier request is still running): it is
                # the connection's last
                cycle.keep_alive = False
                return
            cycle.disconnected = True  # half a body: nothing runs on it
            cycle.message_event.set()
        elif cycle is not None and in_body:  # answered already; the rest of its body is moot
            self.transport.close()
            return
        instance = self.scope["path"] if in_body else ""
        self.transport.write(self._render(status, code, detail, headers, instance))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()  # read and discard, so the client sees the answer, not a reset
        self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _render(
        self, status: int, code: str, detail: str, headers: Sequence[Header], instance: str
    ) -> bytes:
        request_id = fresh_request_id()
        token = request_id_var.set(request_id)
        try:
            body = problem_body(status, code, detail, instance)
        finally:
            request_id_var.reset(token)
        all_headers: list[Header] = [
            *self.server_state.default_headers,
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *headers,
            *security_headers(instance, self.scheme),
            (b"x-request-id", request_id.encode()),
            (b"x-correlation-id", request_id.encode()),
        ]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in all_headers)
        return STATUS_LINE[status] + head + b"\r\n" + body


def serve(settings: Settings, app: str = "src.main:create_served_app") -> None:
    """Run the application's factory under uvicorn with the limits above."""
    protocol: Any = functools.partial(
        GuardedHttpToolsProtocol, limits=ConnectionLimits.of(settings)
    )
    uvicorn.run(
        app,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_concurrency,
        loop="uvloop",
        http=protocol,
        ws="none",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=settings.http_keepalive_timeout_seconds,  # type: ignore[arg-type]
        timeout_graceful_shutdown=30,
        log_config=None,
    )
