"""The command boundary (pure ASGI): the one place a request's transaction commits.

Every command request (POST, PUT, PATCH, DELETE) that reaches an API operation runs with a
unit of work opened for it — lazily: no connection is taken until the use case writes. The use
case writes and emits events and never commits. Once the endpoint has answered, and before a
byte of the answer is sent, the boundary ends the unit exactly once:

* a success (status < 400): the projectors run, the outbox is appended, the answer is stored
  when the request carries an Idempotency-Key, then one COMMIT, then the after-commit hooks
  (cache invalidation), then the answer goes out;
* a refusal (4xx): the command's writes roll back; a keyed refusal that is worth replaying
  (a 404, a 409, …) is stored on its own;
* a crash, a 5xx, or a failed COMMIT: everything rolls back and the key is released.

Keyed and unkeyed commands take this same path and fail the same way. With a key, the request
is first *claimed* (its own short transaction, see `idempotency/store.py`): a completed key is
replayed byte for byte, another request's key is 422, a running one is 409. The body is read
whole before the claim, so a request cut off mid-body is never executed and leaves its key
free. Requests that reach no API operation (404, 405) are passed through: nothing to commit,
and nothing stored under their key.

A streamed answer (`text/event-stream`, the AI assistant's tokens as they come) cannot be held
back: when the endpoint starts one, the boundary ends the unit of work at once — before the
first byte — and passes the stream through. The stream writes its result in its own unit of
work at its end (see `_start_stream`); it is never stored under an Idempotency-Key.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.core.db.uow import SqlUnitOfWork
from src.core.errors.problems import send_error, send_problem, unexpected
from src.core.errors.types import AppError
from src.core.identity import bearer_token, principal_of
from src.core.resources import UNIT_OF_WORK_KEY
from src.middleware.capture import CapturedResponse, read_whole_body, replaying, send_whole
from src.middleware.idempotency.keys import fingerprint, parse_key
from src.middleware.idempotency.store import Claim, KeyConflict, StoredResponse
from src.middleware.routes import reaches_api_operation
from src.runtime import Runtime, runtime_of

COMMAND_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Answers given before the endpoint ran (401, 429) or that refuse the request itself (422):
# never stored, so the client may retry the same key at once.
_NOT_STORED = frozenset({401, 422, 429})


class _InProgress(AppError):
    status, code = 409, "idempotency_request_in_progress"
    detail = "A request with this Idempotency-Key is still being processed; retry shortly."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class _KeyReused(AppError):
    status, code = 422, "idempotency_key_reused"
    detail = (
        "This Idempotency-Key was used with a different request (method, path, query or "
        "body). Use a new key for a new request."
    )


class CommandBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in COMMAND_METHODS:
            await self.app(scope, receive, send)
            return
        if not reaches_api_operation(scope):
            await self.app(scope, receive, send)
            return
        runtime = runtime_of(scope)
        raw_key = next((v for k, v in scope["headers"] if k == b"idempotency-key"), None)
        if raw_key is None:
            await self._run(scope, receive, send, runtime, None)
            return
        key = parse_key(raw_key)
        if key is None:
            await send_problem(
                send,
                scope,
                400,
                "invalid_idempotency_key",
                "The Idempotency-Key must be 1-255 visible ASCII characters, bare or quoted.",
            )
            return
        body = await read_whole_body(receive)
        if body is None:  # the client left mid-body: nothing runs, the key stays free
            return
        owner = "anonymous"
        token = bearer_token(scope)
        if token is not None:
            resources = runtime.resources
            caller = await principal_of(scope, token, resources.tokens, resources.database.primary)
            if caller is None:
                # An invalid token or an ended session: nothing is replayed to it or stored
                # for it; the route answers 401.
                await self._run(scope, replaying(body, receive), send, runtime, None)
                return
            owner = f"user:{caller.user_id}"
        outcome = await runtime.idempotency.claim(owner, key, fingerprint(scope, body))
        if isinstance(outcome, StoredResponse):
            _count(runtime, "replayed")
            headers = [
                (b"idempotent-replayed", b"true"),
                (b"content-length", str(len(outcome.body)).encode()),
                *outcome.headers,
            ]
            await send_whole(send, outcome.status, headers, outcome.body)
            return
        if outcome == "mismatch":
            _count(runtime, "mismatch")
            await send_error(send, scope, _KeyReused())
            return
        if outcome == "in_progress":
            _count(runtime, "in_progress")
            await send_error(send, scope, _InProgress())
            return
        await self._run(scope, replaying(body, receive), send, runtime, outcome)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, runtime: Runtime, claim: Claim | None
    ) -> None:
        uow = runtime.resources.unit_of_work()
        scope[UNIT_OF_WORK_KEY] = uow
        answer = CapturedResponse()
        stream = _Stream()

        async def capture(message: Message) -> None:
            if stream.state == "passing":
                await send(message)
            elif stream.state == "refused":
                return  # the error that replaced the stream has been answered
            elif message["type"] == "http.response.start" and _is_event_stream(message):
                await self._start_stream(scope, send, runtime, uow, claim, stream, message)
            else:
                await answer.send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await uow.rollback()
            if claim is not None and stream.state == "none":
                await self._release(runtime, claim)
            if (
                stream.state != "none"
                or answer.status is None
                or not isinstance(sys.exception(), Exception)
            ):
                raise
            # The application's last-resort handler has logged the crash and answered it (a
            # 500 or 503 problem), then re-raised for the server's sake: send that answer.
            await answer.send_to(send)
            return
        finally:
            del scope[UNIT_OF_WORK_KEY]
        if stream.state != "none":
            return  # ended before the stream's first byte (see `_start_stream`)
        status = answer.status or 500
        try:
            await self._end(runtime, uow, claim, status, answer)
        except KeyConflict:
            _count(runtime, "in_progress")
            await send_error(
                send,
                scope,
                _InProgress("This request outlived its Idempotency-Key lock and was not applied."),
            )
            return
        except Exception as error:
            if claim is not None:
                await self._release(runtime, claim)
            await send_error(send, scope, unexpected(error))
            return
        await answer.send_to(send)

    async def _end(
        self,
        runtime: Runtime,
        uow: SqlUnitOfWork,
        claim: Claim | None,
        status: int,
        answer: CapturedResponse,
    ) -> None:
        """Commit or roll back the command, storing its answer under `claim` when it counts."""
        storable = claim is not None and status < 500 and status not in _NOT_STORED
        if status >= 400:
            await uow.rollback()
            if not storable:
                if claim is not None:
                    await self._release(runtime, claim)
                return
            uow = runtime.resources.unit_of_work()  # the refusal's record alone
        if claim is not None and storable:
            stored = StoredResponse.of(status, answer.headers, answer.body)
            uow.before_commit(runtime.idempotency.record(claim, stored))
        await uow.commit()
        if claim is not None:
            _count(runtime, "stored")

    async def _start_stream(
        self,
        scope: Scope,
        send: Send,
        runtime: Runtime,
        uow: SqlUnitOfWork,
        claim: Claim | None,
        stream: _Stream,
        start: Message,
    ) -> None:
        """The endpoint answers with a stream (`text/event-stream`): end the request's unit
        of work now, before the first byte, then pass the stream through as it comes.

        Whatever the endpoint wrote before answering commits here, as for any success; what
        the stream itself produces is written by the streaming code in its own unit of work
        (`command_transaction`), at the stream's end: the answer is not known before then.
        A stream is never stored under an Idempotency-Key (it cannot be replayed byte for
        byte); routes that stream answer keyed requests whole instead, so a claim here is
        only released, which leaves the key free.
        """
        try:
            await uow.commit()
        except Exception as error:
            stream.state = "refused"
            await send_error(send, scope, unexpected(error))
            return
        finally:
            # after the commit: on SQLite the unit holds the write lock until it ends
            if claim is not None:
                await self._release(runtime, claim)
        stream.state = "passing"
        await send(start)

    @staticmethod
    async def _release(runtime: Runtime, claim: Claim) -> None:
        await runtime.idempotency.release(claim)
        _count(runtime, "released")


class _Stream:
    """Whether the endpoint's answer is a stream: `none` (a whole answer, held back until the
    command is ended), `passing` (the unit of work ended; every message goes straight out),
    `refused` (ending it failed: its error was answered, the stream's messages are dropped)."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: Literal["none", "passing", "refused"] = "none"


def _is_event_stream(start: Message) -> bool:
    return any(
        name == b"content-type" and value.split(b";")[0].strip() == b"text/event-stream"
        for name, value in start.get("headers", ())
    )


def _count(runtime: Runtime, outcome: str) -> None:
    """`idempotency_requests_total{outcome}` and the request span's attribute, together."""
    runtime.metrics.idempotency_requests.labels(outcome).inc()
    span: Any = trace.get_current_span()
    span.set_attribute("idempotency.outcome", outcome)
