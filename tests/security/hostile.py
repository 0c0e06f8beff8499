"""Helpers for the hostile-input tests: raw JSON bytes, raw ASGI requests, refusal checks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

from tests.helpers import assert_problem

# One representative of each class of hostile text, injected into every text field.
PAYLOADS = {
    "sql": "' OR '1'='1'; DROP TABLE users; --",
    "nul": "\x00",
    "lone-surrogate": "\ud800",
    "rtl-override": "\u202e",
    "10kB": "x" * 10_000,
}


def raw_json(body: Any) -> bytes:
    """JSON with every non-ASCII character escaped, so lone surrogates go out as `\\ud800`."""
    return json.dumps(body, ensure_ascii=True).encode("ascii")


async def post_json(
    client: httpx.AsyncClient,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> httpx.Response:
    return await client.request(
        method,
        path,
        content=raw_json(body),
        headers={"content-type": "application/json", **(headers or {})},
    )


def assert_refused(
    response: httpx.Response, status: int, code: str, *, secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A documented problem answer that echoes none of `secrets`."""
    problem = assert_problem(response, status, code)
    for secret in secrets:
        assert secret not in response.text
    return problem


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key.lower() == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


async def asgi_request(
    app: ASGIApp,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
) -> RawResponse:
    """One request straight through the ASGI interface, headers as raw bytes — what a server
    would hand over, without the HTTP client's own header checks."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"inkwell.test"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("inkwell.test", 80),
    }
    sent = False
    messages: list[Message] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return RawResponse(start["status"], list(start.get("headers", [])), payload)
