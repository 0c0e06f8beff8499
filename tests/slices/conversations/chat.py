"""Helpers for the conversation tests: create, send, read back, parse a stream."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

BASE = "/api/v1/conversations"
STREAM = {"Accept": "text/event-stream"}


async def create(client: httpx.AsyncClient, user: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.post(BASE, json=body, headers=user["headers"])
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def send(
    client: httpx.AsyncClient,
    user: dict[str, Any],
    conversation: dict[str, Any],
    content: str,
    **headers: str,
) -> httpx.Response:
    return await client.post(
        f"{BASE}/{conversation['id']}/messages",
        json={"content": content},
        headers={**user["headers"], **headers},
    )


async def messages(
    client: httpx.AsyncClient, user: dict[str, Any], conversation: dict[str, Any], **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        f"{BASE}/{conversation['id']}/messages",
        params={"limit": 100, **params},
        headers=user["headers"],
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def conversation_of(
    client: httpx.AsyncClient, user: dict[str, Any], conversation_id: str
) -> dict[str, Any]:
    listed = (await client.get(BASE, params={"limit": 100}, headers=user["headers"])).json()
    return next(item for item in listed["items"] if item["id"] == conversation_id)


def events(body: bytes) -> list[tuple[str, Any]]:
    """The (event, parsed data) pairs of a Server-Sent Events body."""
    parsed = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        parsed.append((fields["event"], orjson.loads(fields["data"])))
    return parsed


def metric(text: str, name: str, **labels: str) -> float:
    """The value of sample `name{labels}` in a Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        inside = line[len(name) + 1 : line.index("}")]
        found = dict(part.split("=", 1) for part in inside.split(","))
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
