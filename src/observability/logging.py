"""Structured logging with loguru.

* `LOG_FORMAT=json`: one JSON object per line on stdout; `pretty`: coloured, for a terminal.
* Every line carries `request_id`, `correlation_id` (from the request-context middleware) and
  `trace_id`, `span_id` (from the current OpenTelemetry span), whichever logger wrote it:
  stdlib loggers (uvicorn, sqlalchemy, alembic, …) are routed into loguru.
* Secrets never reach a sink: the code never logs bodies or headers, and `redact()` scrubs
  anything shaped like a bearer token, a JWT or a bcrypt hash from every message as a last
  line of defence.
* Lines are rendered and written by one writer thread (`LineWriter`): the event loop only
  hands loguru's record over. The queue is bounded; when stdout does not keep up, new lines
  are dropped and counted (a `log.dropped` line says how many) instead of stalling requests.
  The lifespan's end drains the queue and stops the thread (what is logged after it is written
  synchronously); so does the process's exit.
* The access line, one per request, skips loguru in the JSON format (`access_line`): what
  loguru does for a line on the loop (a bound logger, the caller's frame, the record, the
  patcher's redaction) was measured at about 40 % of a cached read's server CPU. The edge hands
  over the line's fields, and the writer thread renders the same JSON object as `render_json`
  would. Its fields are a route template, never a raw path, so there is nothing to redact.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import queue
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any, TextIO

import orjson
from loguru import logger
from opentelemetry import trace

from src.core.context import correlation_id_var, request_id_var

# Records waiting for the writer thread; beyond this many, new ones are dropped and counted.
QUEUE_CAPACITY = 10_000
# How long the writer sleeps after writing a batch that emptied the queue. Waking for every
# line made the thread contend for the GIL with the loop once per request; on SQLite, whose
# statements release the GIL, that cost the profile ≈ 70 µs of a ≈ 260 µs request at 64
# connections. Lines wait at most this long; a full batch is followed by the next at once.
WRITE_PAUSE_SECONDS = 0.005

_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}"),
    re.compile(r"(?i)(\"?(?:password|passwd|secret|token|authorization)\"?\s*[:=]\s*)\S+"),
)


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


def _patch(record: Any) -> None:
    extra = record["extra"]
    extra.setdefault("request_id", request_id_var.get())
    extra.setdefault("correlation_id", correlation_id_var.get())
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        extra.setdefault("trace_id", format(context.trace_id, "032x"))
        extra.setdefault("span_id", format(context.span_id, "016x"))
    else:
        extra.setdefault("trace_id", "")
        extra.setdefault("span_id", "")
    record["message"] = redact(record["message"])


def render_json(record: Any) -> str:
    """One JSON object and its newline: run in the writer thread, never on the event loop."""
    payload: dict[str, Any] = {
        "timestamp": record["time"].astimezone(dt.UTC).isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "message": record["message"],
        "logger": record["name"],
    }
    payload.update((k, v) for k, v in record["extra"].items() if not k.startswith("_"))
    if record["exception"] is not None:
        exc_type, exc_value, exc_tb = record["exception"]
        payload["error"] = {
            "type": getattr(exc_type, "__name__", str(exc_type)),
            "message": redact(str(exc_value)),
            "stack": redact("".join(traceback.format_exception(exc_type, exc_value, exc_tb))),
        }
    return orjson.dumps(payload, default=str, option=orjson.OPT_APPEND_NEWLINE).decode()


_ANSI = {"TRACE": "36;1", "DEBUG": "34;1", "INFO": "1", "SUCCESS": "32;1", "WARNING": "33;1",
         "ERROR": "31;1", "CRITICAL": "41;1"}  # fmt: skip


def render_pretty(record: Any, *, colour: bool) -> str:
    """A terminal line: time, level, request id, message, the extras, then any stack."""
    extra = {k: v for k, v in record["extra"].items() if not k.startswith("_")}
    parts = [
        record["time"].strftime("%H:%M:%S.") + f"{record['time'].microsecond // 1000:03d}",
        f"{record['level'].name: <7}",
        str(extra.get("request_id", "")),
        record["message"],
        str(extra),
    ]
    if colour:
        codes = ("32", _ANSI.get(record["level"].name, "1"), "36", "0", "2")
        parts = [f"\x1b[{code}m{part}\x1b[0m" for code, part in zip(codes, parts, strict=True)]
    line = " ".join(parts) + "\n"
    if record["exception"] is not None:
        exc_type, exc_value, exc_tb = record["exception"]
        line += redact("".join(traceback.format_exception(exc_type, exc_value, exc_tb)))
    return line


class AccessRecord(tuple[Any, ...]):
    """One access line's fields, rendered by the writer thread (`render_access_json`)."""

    __slots__ = ()


def render_access_json(record: AccessRecord) -> str:
    """The access line as `render_json` writes a loguru record bound with the same fields."""
    (stamp, level, logger_name, method, route, status, duration_ms, client) = record[:8]
    request_id, correlation_id, trace_id, span_id = record[8:]
    payload = {
        "timestamp": dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "message": f"{method} {route} {status}",
        "logger": logger_name,
        "event": "http.access",
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": duration_ms,
        "client": client,
        "request_id": request_id,
        "correlation_id": correlation_id,
        "trace_id": format(trace_id, "032x") if trace_id else "",
        "span_id": format(span_id, "016x") if trace_id else "",
    }
    return orjson.dumps(payload, option=orjson.OPT_APPEND_NEWLINE).decode()


class _InterceptHandler(logging.Handler):
    """Sends stdlib logging records to loguru, keeping their level and origin."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = logging.currentframe(), 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
        logger.opt(depth=depth, exception=record.exc_info).bind(logger_name=record.name).log(
            level, record.getMessage()
        )


class LineWriter:
    """Renders and writes log lines in one daemon thread, fed through a bounded queue.

    The caller (the event loop, mostly) only hands loguru's record over: no JSON rendering, no
    write, no flush on the loop. When the queue is full — stdout stalled, a log collector
    stuck — new records are dropped and counted rather than blocking the loop; the writer
    says how many in a `log.dropped` WARNING line once it catches up. `flush()` waits for
    every line handed over so far; `close()` drains and stops the thread (at exit), after
    which records are written synchronously.
    """

    def __init__(self, capacity: int = QUEUE_CAPACITY, pause: float = WRITE_PAUSE_SECONDS) -> None:
        self.capacity = capacity
        self.pause = pause
        self.dropped_total = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._render: Callable[[Any], str] = render_json
        self._stream: Callable[[], TextIO] = lambda: sys.stdout
        self._dropped = 0
        self._drop_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def configure(self, render: Callable[[Any], str], stream: Callable[[], TextIO]) -> None:
        self.flush()  # lines already handed over keep the format they were logged with
        self._render, self._stream = render, stream
        self._closed = False  # (re)opened: the thread starts again on the next line

    def __call__(self, message: Any) -> None:
        """The loguru sink: the record goes to the thread, or is dropped when the queue is full."""
        self.put(message.record)

    def put(self, record: Any) -> None:
        """A loguru record or an `AccessRecord` for the thread (written at once once closed)."""
        if self._closed:
            self._write([self._safe_render(record)])
            return
        if self._thread is None:
            self._start()
        if self._queue.qsize() >= self.capacity:
            with self._drop_lock:
                self._dropped += 1
                self.dropped_total += 1
            return
        self._queue.put(record)

    def flush(self, timeout: float = 5.0) -> None:
        """Blocks until every record handed over so far is written (or `timeout` passes)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Drains the queue and stops the thread; later lines are written synchronously."""
        thread = self._thread
        self._closed = True
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)
        with self._start_lock:
            if self._thread is thread:
                self._thread = None

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
            thread.start()
            self._thread = thread

    def after_fork_in_child(self) -> None:
        # A forked child has the parent's queue but not its thread: it starts its own on its
        # first line (what the parent had queued is the parent's to write).
        self._queue = queue.SimpleQueue()
        self._drop_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread = None

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines: list[str] = []
            for item in batch:
                if item is _STOP:
                    self._write(lines)
                    self._drain_after_stop()
                    return
                if isinstance(item, threading.Event):
                    self._write(lines)
                    lines = []
                    item.set()
                    continue
                lines.append(self._safe_render(item))
            self._write(lines)
            if len(batch) < _BATCH:
                time.sleep(self.pause)  # let lines gather: one wake-up per batch, not per line

    def _drain_after_stop(self) -> None:
        lines: list[str] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, threading.Event):
                item.set()
            elif item is not _STOP:
                lines.append(self._safe_render(item))
        self._write(lines)

    def _safe_render(self, record: Any) -> str:
        try:
            if type(record) is AccessRecord:
                return render_access_json(record)
            return self._render(record)
        except Exception as exc:  # a line that cannot be rendered must not stop the writer
            return self._render_notice(f"a log line could not be rendered: {type(exc).__name__}")

    def _render_notice(self, message: str, **fields: Any) -> str:
        payload = {
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "level": "WARNING",
            "message": message,
            "logger": __name__,
            **fields,
        }
        return orjson.dumps(payload, option=orjson.OPT_APPEND_NEWLINE).decode()

    def _write(self, lines: list[str]) -> None:
        with self._drop_lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            notice = f"{dropped} log lines dropped: the log stream did not keep up"
            lines.append(self._render_notice(notice, event="log.dropped", dropped=dropped))
        if not lines:
            return
        # Looked up at every write, so a replaced sys.stdout (test capture) is followed; flushed
        # at once, so lines are not held back in a buffer when stdout is a pipe.
        stream = self._stream()
        try:
            stream.write("".join(lines))
            stream.flush()
        except (OSError, ValueError):  # stdout closed or gone: nothing left to tell
            pass


_STOP = object()
_BATCH = 256
_writer = LineWriter()
atexit.register(_writer.close)
os.register_at_fork(after_in_child=_writer.after_fork_in_child)


# The least level number an access line needs to be written in the JSON format; None when
# the format is not JSON (the line then goes through loguru, as every other line does).
_access_threshold: int | None = None
# The standard names' numbers, which loguru's levels share (copied once: the call copies).
_LEVEL_NUMBERS = logging.getLevelNamesMapping()


def access_line(
    level: str,
    logger_name: str,
    method: str,
    route: str,
    status: int,
    duration_ms: float,
    client: str | None,
    span_context: trace.SpanContext | None = None,
) -> None:
    """One request's access line (`event=http.access`), with the request's ids and trace.

    `span_context` is the request's, when the caller has it already (the edge does), which
    saves looking the current span up again."""
    threshold = _access_threshold
    if threshold is None:
        logger.bind(
            event="http.access",
            method=method,
            route=route,
            status=status,
            duration_ms=duration_ms,
            client=client,
        ).log(level, "{} {} {}", method, route, status)
        return
    if _LEVEL_NUMBERS.get(level, logging.INFO) < threshold:
        return
    context = span_context or trace.get_current_span().get_span_context()
    valid = context.is_valid
    _writer.put(
        AccessRecord(
            (
                time.time(),
                level,
                logger_name,
                method,
                route,
                status,
                duration_ms,
                client,
                request_id_var.get(),
                correlation_id_var.get(),
                context.trace_id if valid else 0,
                context.span_id if valid else 0,
            )
        )
    )


def flush_logs(timeout: float = 5.0) -> None:
    """Waits until every line logged so far is written (for a reader of the output)."""
    _writer.flush(timeout)


def stop_log_writer(timeout: float = 5.0) -> None:
    """At the application's shutdown: every queued line is written, and the few lines logged
    after it (the server's own last words) are written synchronously. uvicorn ends a process
    stopped by SIGTERM by raising that signal again, with the default handler: the process
    dies without running `atexit`, so nothing may be left in a queue by then."""
    _writer.close(timeout)


def configure_logging(level: str, fmt: str) -> None:
    """(Re)configure the process's logging. Safe to call more than once."""
    global _access_threshold
    logger.remove()
    _access_threshold = logger.level(level).no if fmt == "json" else None
    logger.configure(patcher=_patch)
    if fmt == "json":
        _writer.configure(render_json, lambda: sys.stdout)
    else:
        colour = sys.stderr.isatty()
        _writer.configure(partial(render_pretty, colour=colour), lambda: sys.stderr)
    # The format is empty: loguru hands the record to the sink, which renders it off the loop.
    logger.add(_writer, level=level, format="", backtrace=False, diagnose=False, colorize=False)
    logging.basicConfig(
        handlers=[_InterceptHandler()], level=logging.getLevelName(level), force=True
    )
    for name in ("uvicorn", "uvicorn.error", "sqlalchemy", "alembic"):
        std = logging.getLogger(name)
        std.handlers = [_InterceptHandler()]
        std.propagate = False
    # uvicorn's own access log is replaced by the edge's access line. Its logger gets no
    # handler at all: uvicorn asks `hasHandlers()` once per connection, and a logger that has
    # one (even a disabled one) makes it format the client, quote the path and call the
    # logger for every answer, only for the line to be thrown away.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers = []
    uvicorn_access.propagate = False
    uvicorn_access.disabled = True
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
