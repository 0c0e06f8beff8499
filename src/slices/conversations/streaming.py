"""The streamed answer of an exchange: Server-Sent Events, written as raw ASGI.

```
event: token
data: {"text": "Hel"}

event: token
data: {"text": "lo"}

event: done
data: {"user_message": {...}, "assistant_message": {...}}
```

Every event's data is one line of JSON, so any text (newlines, a leading space, `data:`
itself) arrives exactly. Whether the provider answers at all is settled before this answer
starts: the router pulls the first chunk first, so a provider that is down, slow past its
deadline or refusing is a normal 503 problem, not a stream that fails.

Once the stream runs, its end decides what is stored (`finish`, given the text so far and
whether it is whole):

* the provider finishes: the exchange is stored, then `event: done` carries it;
* the client goes away (`http.disconnect` from the server, an `OSError` from `send`, or the
  request's task cancelled): the provider stream is closed, and the caller's message and
  the partial answer — what the client was shown — are stored; nothing more is sent, and
  nothing is logged above INFO (the access line shows status 200);
* the provider fails midway: nothing is stored (as when it fails before the stream) and
  `event: error` carries the 503 `ai_unavailable` problem, after which the stream ends;
* storing fails (the database is down): `event: error` carries the problem (503 or 500),
  logged once like any other.

`finish` runs as a task the stream awaits through `asyncio.shield`: a cancellation of the
request (a server shutting down past its grace period, a client gone under a server that
cancels) does not cut the write midway; the write completes on its own and commits through
its own unit of work (`command_transaction`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from loguru import logger
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from src.core.ai.gateway import AIGateway
from src.core.ai.port import AIUnavailable, Completion, estimate_prompt_tokens, estimate_tokens
from src.core.db.uow import UnitOfWork, UnitOfWorkFactory, command_transaction
from src.core.errors.problems import problem_body, unexpected
from src.core.errors.types import AppError
from src.slices.conversations.exchange import SendMessageCommand, prepare, record

Finish = Callable[[str, bool], Awaitable[bytes]]  # (text, whole) → the `done` event's JSON
Close = Callable[[], Awaitable[None]]

EVENT_STREAM = "text/event-stream"
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # proxies (nginx) pass each event on at once instead of buffering the answer
    (b"x-accel-buffering", b"no"),
]
# Writes still running after their stream was cancelled: kept referenced until they end.
_PENDING: set[asyncio.Task[bytes]] = set()


def event(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def token_event(text: str) -> bytes:
    return event("token", orjson.dumps({"text": text}))


class _ClientGone(Exception):
    """The client went away (or cannot be written to any more)."""


class ChatStream(Response):
    """The streamed answer: `first` (already pulled), then the rest of `pieces`."""

    def __init__(
        self,
        first: str | Completion,
        pieces: AsyncIterator[str | Completion],
        finish: Finish,
        close: Close,
    ) -> None:
        super().__init__(status_code=200, media_type=EVENT_STREAM)
        self._first = first
        self._pieces = pieces
        self._finish = finish
        self._close = close
        self._text: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = scope.get("path", "")
        try:
            await self._stream(instance, receive, send)
        finally:
            with contextlib.suppress(Exception):
                await self._pieces.aclose()  # type: ignore[attr-defined]
            await asyncio.shield(self._close())

    async def _stream(self, instance: str, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        except OSError:
            await self._store(whole=False)
            return
        relay = asyncio.ensure_future(self._relay(send))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({relay, gone}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel(relay, gone)
            await self._store(whole=False)
            raise
        if not relay.done():  # the client left first
            await _cancel(relay, gone)
            await self._store(whole=False)
            return
        await _cancel(gone)
        failure = relay.exception()
        if isinstance(failure, _ClientGone):
            await self._store(whole=False)
            return
        if isinstance(failure, AIUnavailable):
            logger.info("the AI provider failed midway through a stream: {}", failure.reason)
            await self._end(send, event("error", _problem(failure, instance)))
            return
        if failure is not None:
            raise failure
        try:
            done = await self._store(whole=True)
        except Exception as error:
            await self._end(send, event("error", _problem(unexpected(error), instance)))
            return
        await self._end(send, event("done", done))

    async def _relay(self, send: Send) -> None:
        """Send each chunk as it comes, until the final `Completion`."""
        piece = self._first
        while True:
            if isinstance(piece, Completion):
                return
            if piece:
                try:
                    await send(_body(token_event(piece)))
                except OSError as error:
                    raise _ClientGone() from error
                self._text.append(piece)  # what the client has been sent
            try:
                piece = await anext(self._pieces)
            except StopAsyncIteration:
                raise AIUnavailable("the stream ended without its final answer") from None

    async def _store(self, *, whole: bool) -> bytes:
        """`finish` for the text so far, shielded from a cancellation of this request."""
        task = asyncio.ensure_future(self._finish("".join(self._text), whole))
        _PENDING.add(task)
        task.add_done_callback(_forget)
        if whole:
            return await asyncio.shield(task)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            unexpected(error)  # logged once, with the request's ids: the partial answer is lost
            return b""

    @staticmethod
    async def _end(send: Send, last: bytes) -> None:
        with contextlib.suppress(OSError):
            await send(_body(last))
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _body(data: bytes) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": True}


def _problem(error: AppError, instance: str) -> bytes:
    return problem_body(error.status, error.code, error.detail, instance, extra=error.extra)


def _forget(task: asyncio.Task[bytes]) -> None:
    _PENDING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        task.exception()  # retrieved: reported by whoever awaited it


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _cancel(*tasks: asyncio.Future[Any]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task


async def open_chat_stream(
    uow: UnitOfWork,
    units: UnitOfWorkFactory,
    ai: AIGateway,
    command: SendMessageCommand,
    context_messages: int,
) -> ChatStream:
    """Prepare the exchange, admit the call and pull the provider's first chunk — any
    failure so far is a normal problem answer (404, 429, 503) — then the stream.

    `uow` is the request's (it only reads, through `reader()`; the command boundary ends it,
    empty, when the stream starts). The exchange is stored at the stream's end in a unit of
    work of its own from `units`, through `command_transaction`: the stream's end is its
    commit point, since only then is the answer known (or cut).
    """
    prompt = await prepare(uow, command, context_messages)
    stack = contextlib.AsyncExitStack()
    try:
        call = await stack.enter_async_context(ai.call(command.actor.user_id, "chat"))
        pieces = aiter(call.stream(prompt.messages))
        try:
            first = await anext(pieces)
        except StopAsyncIteration:
            raise AIUnavailable("the stream ended before its first chunk") from None
    except BaseException:
        await stack.aclose()
        raise

    async def finish(text: str, whole: bool) -> bytes:
        if not whole:  # no final usage from the provider: estimate what it spent
            call.add_tokens(estimate_prompt_tokens(prompt.messages) + estimate_tokens(text))
        async with command_transaction(units()) as unit:
            exchange = await record(unit, prompt, text, call)
        return exchange.model_dump_json().encode()

    return ChatStream(first, pieces, finish, stack.aclose)
