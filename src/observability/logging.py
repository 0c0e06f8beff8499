"""Structured logging with loguru.

* `LOG_FORMAT=json`: one JSON object per line on stdout; `pretty`: coloured, for a terminal.
* Every line carries `request_id`, `correlation_id` (from the request-context middleware) and
  `trace_id`, `span_id` (from the current OpenTelemetry span), whichever logger wrote it:
  stdlib loggers (uvicorn, sqlalchemy, alembic, …) are routed into loguru.
* Secrets never reach a sink: the code never logs bodies or headers, and `redact()` scrubs
  anything shaped like a bearer token, a JWT or a bcrypt hash from every message as a last
  line of defence.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
import traceback
from typing import Any

import orjson
from loguru import logger
from opentelemetry import trace

from src.core.context import correlation_id_var, request_id_var

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


def _json_sink_format(record: Any) -> str:
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
    record["extra"]["_json"] = orjson.dumps(payload, default=str).decode()
    return "{extra[_json]}\n"


_PRETTY = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[request_id]}</cyan> {message} <dim>{extra}</dim>\n{exception}"
)


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


def _write_stdout(message: str) -> None:
    # Looked up at every write, so a replaced sys.stdout (test capture) is followed; flushed
    # at once, so lines are not held back in a buffer when stdout is a pipe.
    stream = sys.stdout
    stream.write(message)
    stream.flush()


def configure_logging(level: str, fmt: str) -> None:
    """(Re)configure the process's logging. Safe to call more than once."""
    logger.remove()
    logger.configure(patcher=_patch)
    if fmt == "json":
        logger.add(_write_stdout, level=level, format=_json_sink_format, backtrace=False,
                   diagnose=False, colorize=False)  # fmt: skip
    else:
        logger.add(sys.stderr, level=level, format=_PRETTY, backtrace=False, diagnose=False)
    logging.basicConfig(
        handlers=[_InterceptHandler()], level=logging.getLevelName(level), force=True
    )
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy", "alembic"):
        std = logging.getLogger(name)
        std.handlers = [_InterceptHandler()]
        std.propagate = False
    # uvicorn's own access log is replaced by the request-context middleware's access line.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
