"""Holding an application's answer back until the layer in front has decided what to send."""

from __future__ import annotations

from starlette.types import Message, Receive, Send


class CapturedResponse:
    """The answer an ASGI application sent, kept whole in memory (commands' answers are small)."""

    __slots__ = ("_body", "headers", "status")

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            self._body.append(message.get("body", b""))

    @property
    def body(self) -> bytes:
        return b"".join(self._body)

    async def send_to(self, send: Send) -> None:
        await send_whole(send, self.status or 500, self.headers, self.body)


async def send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_whole_body(receive: Receive) -> bytes | None:
    """The request body, or None when the client went away before sending all of it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the application `body` (already read), then the client's own
    messages (a later `http.disconnect` is real)."""
    replayed = False

    async def receive_again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
