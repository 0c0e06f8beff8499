"""Per-request context variables, set by the request-context middleware.

They are read by the log formatter, by spans and by error bodies, so that one request id
ties a response, its log lines and its trace together.
"""

from __future__ import annotations

import contextvars
import os

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
correlation_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "correlation_id", default=""
)


class _RequestIds:
    """Fresh request ids: 32 hex digits of the operating system's randomness, read 128 ids
    at a time.

    Not `uuid.uuid4().hex`: building the UUID object cost ≈ 4 µs per request, and the id is
    documented as 32 hex digits, not a UUID; and not one `os.urandom` call per id, a system
    call per request. A forked child drops what its parent had read (`after_fork_in_child`),
    so two workers never hand out the same ids. Called on the event loop only (the edge and
    the server's own answers): it takes no lock.
    """

    _IDS_PER_READ = 128

    def __init__(self) -> None:
        self._digits = ""
        self._next = 0

    def __call__(self) -> str:
        start = self._next
        if start >= len(self._digits):
            self._digits = os.urandom(16 * self._IDS_PER_READ).hex()
            start = 0
        self._next = start + 32
        return self._digits[start : start + 32]

    def after_fork_in_child(self) -> None:
        self._digits, self._next = "", 0


fresh_request_id = _RequestIds()
os.register_at_fork(after_in_child=fresh_request_id.after_fork_in_child)
