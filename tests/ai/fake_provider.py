"""A real OpenAI-compatible Chat Completions server for tests: uvicorn on 127.0.0.1 in a
thread of its own (its own event loop), so the adapter talks HTTP to a separate peer.

`FakeProvider.mode` picks what it does:

* `ok` — a deterministic answer (`# Fake draft: <prompt words>` then a body), whole or as SSE
  chunks with `stream_options.include_usage` honoured; `usage` reported unless `no_usage`;
* `slow` — waits `delay` seconds before answering (before the first chunk when streaming);
* `trickle` — streams one chunk every `delay` seconds (the total deadline must cut it);
* `error` — 500; `rate_limited` — 429 with `Retry-After: retry_after`; `unauthorized` — 401;
* `malformed` — 200 with a body that is not JSON (or SSE lines that are not JSON);
* `no_choices` — 200 `{"choices": []}`;
* `no_usage` — like `ok`, without `usage`.

`calls` counts chat-completion requests; `requests` keeps each one's headers and JSON body;
`first_token_seconds` records, per streamed call, the server's own time from receiving the
request to writing the first chunk (for measuring the adapter's overhead).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

FAKE_MODEL_ANSWERED = "fake-model-2026"


def answer_text(messages: list[dict[str, Any]]) -> str:
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    words = " ".join(prompt.split()[:8]) or "nothing"
    return (
        f"# Fake draft: {words}\n\n"
        f"This body was written by the fake provider for the prompt: {prompt}\n\n"
        "It has a second paragraph, so the body is long enough."
    )


@dataclass
class FakeProvider:
    mode: str = "ok"
    delay: float = 0.0
    retry_after: int = 7
    chunk_words: int = 1
    calls: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    first_token_seconds: list[float] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.mode, self.delay, self.retry_after = "ok", 0.0, 7
        self.calls = 0
        self.requests.clear()
        self.first_token_seconds.clear()

    # --- the HTTP peer ----------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        if self.mode == "error":
            return JSONResponse({"error": "down"}, status_code=500)
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        received = time.perf_counter()
        self.calls += 1
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        mode = self.mode
        if mode == "slow":
            await asyncio.sleep(self.delay)
        if mode == "error":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if mode == "rate_limited":
            return JSONResponse(
                {"error": {"message": "slow down"}},
                status_code=429,
                headers={"Retry-After": str(self.retry_after)},
            )
        if mode == "unauthorized":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        if mode == "no_choices":
            return JSONResponse({"id": "x", "choices": []})
        text = answer_text(body["messages"])
        usage = {"prompt_tokens": 11, "completion_tokens": 13, "total_tokens": 24}
        if body.get("stream"):
            return StreamingResponse(
                self._chunks(text, usage, body, mode, received), media_type="text/event-stream"
            )
        if mode == "malformed":
            return Response("this is not json {", media_type="application/json")
        answer: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": FAKE_MODEL_ANSWERED,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }
        if mode != "no_usage":
            answer["usage"] = usage
        return JSONResponse(answer)

    async def _chunks(
        self, text: str, usage: dict[str, int], body: dict[str, Any], mode: str, received: float
    ) -> AsyncIterator[bytes]:
        if mode == "malformed":
            yield b"data: {not json\n\n"
            return
        words = text.split(" ")
        pieces = [
            " ".join(words[i : i + self.chunk_words]) + " "
            for i in range(0, len(words), self.chunk_words)
        ]
        pieces[-1] = pieces[-1][:-1]
        first = True
        for piece in pieces:
            if mode == "trickle":
                await asyncio.sleep(self.delay)
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "model": FAKE_MODEL_ANSWERED,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            if first:
                self.first_token_seconds.append(time.perf_counter() - received)
                first = False
        include = (body.get("stream_options") or {}).get("include_usage")
        if include and mode != "no_usage":
            final = {"id": "chatcmpl-fake", "choices": [], "usage": usage}
            yield f"data: {json.dumps(final)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake provider did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
