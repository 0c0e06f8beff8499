"""A client that leaves mid-stream: its message and the partial answer stay stored, and
nothing is logged as an error — however the server tells the application (an
`http.disconnect` message, an `OSError` from `send`, or the request's task cancelled)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from loguru import logger

from tests.ai.conftest import openai_settings
from tests.ai.fake_provider import FakeProvider, answer_text
from tests.helpers import authed_user
from tests.slices.conversations.chat import BASE, conversation_of, create, messages

TOKENS_BEFORE_LEAVING = 3


class _Client:
    """A raw ASGI client of one streamed exchange that leaves after a few token events."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.tokens: list[str] = []
        self.left = asyncio.Event()
        self.body_sent = False

    async def receive(self) -> dict[str, Any]:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body" or not message.get("body"):
            if message["type"] == "http.response.start":
                self.status = message["status"]
            return
        if self.left.is_set():
            if self.how == "oserror":
                raise OSError("connection reset by peer")
            return  # the server drops what it can no longer deliver
        for block in message["body"].decode().split("\n\n"):
            if block.startswith("event: token"):
                self.tokens.append(orjson.loads(block.split("data: ", 1)[1])["text"])
        if len(self.tokens) >= TOKENS_BEFORE_LEAVING:
            self.left.set()

    def scope(self, path: str, token: str, body: bytes) -> dict[str, Any]:
        self.body = body
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"inkwell.test"),
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"accept", b"text/event-stream"),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("inkwell.test", 80),
        }


@pytest.mark.parametrize("how", ["disconnect", "oserror", "cancelled"])
async def test_a_client_that_leaves_midway_leaves_its_message_and_the_partial_answer(
    make_client: Callable[..., Any], fake_provider: FakeProvider, how: str
) -> None:
    settings = openai_settings(fake_provider, ai_timeout_seconds=30.0)
    async with make_client(**settings) as http:
        user = await authed_user(http)
        conversation = await create(http, user)
        fake_provider.mode, fake_provider.delay = "trickle", 0.05
        problems: list[Any] = []
        sink = logger.add(problems.append, level="WARNING")
        try:
            client = _Client(how)
            path = f"{BASE}/{conversation['id']}/messages"
            scope = client.scope(path, user["tokens"]["access_token"], b'{"content": "hello"}')
            request = asyncio.create_task(http.app(scope, client.receive, client.send))  # type: ignore[attr-defined]
            if how == "cancelled":
                await client.left.wait()
                request.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await request
            else:
                await asyncio.wait_for(request, 10)
            for _ in range(200):  # a cancelled request's write finishes on its own
                if len(await messages(http, user, conversation)) == 2:
                    break
                await asyncio.sleep(0.02)
        finally:
            logger.remove(sink)
        assert client.status == 200
        asked, answered = await messages(http, user, conversation)
        assert asked["role"] == "user"
        assert asked["content"] == "hello"
        assert answered["role"] == "assistant"
        sent = "".join(client.tokens)
        full = answer_text([{"role": "user", "content": "hello"}])
        assert answered["content"].startswith(sent)
        assert len(sent) > 0
        assert len(answered["content"]) < len(full)  # the partial answer, not the whole
        assert full.startswith(answered["content"])
        assert (await conversation_of(http, user, conversation["id"]))["message_count"] == 2
        # the partial call was charged (estimated: no usage came) and its lease given back
        budget = http.app.state.resources.ai_gateway.budget  # type: ignore[attr-defined]
        assert await budget.used(uuid.UUID(user["id"])) > 0
        fake_provider.mode = "ok"
        follow_up = await http.post(
            f"{BASE}/{conversation['id']}/messages",
            json={"content": "still there?"},
            headers=user["headers"],
        )
        assert follow_up.status_code == 201, follow_up.text
    assert [record.record["message"] for record in problems] == []
