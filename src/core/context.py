"""Per-request context variables, set by the request-context middleware.

They are read by the log formatter, by spans and by error bodies, so that one request id
ties a response, its log lines and its trace together.
"""

from __future__ import annotations

import contextvars

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
correlation_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "correlation_id", default=""
)
