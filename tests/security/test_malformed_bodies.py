"""Bodies that are too big, not JSON, not UTF-8, deeply nested or of the wrong media type.

Each is a 4xx problem (413 `payload_too_large`, otherwise 422 `validation_error`), never a
500 and never a bare 400 (see tests/middleware/test_body_limit.py for the streamed 413).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.helpers import authed_user, publish, signup_body
from tests.security.hostile import assert_refused, raw_json

ONE_MIB = 1024 * 1024


async def _command(client: httpx.AsyncClient, name: str) -> tuple[str, str, dict[str, str]]:
    """(method, path, headers) of a command that would succeed with a valid body."""
    if name in ("signup", "login", "refresh"):
        path = {"signup": "/signup", "login": "/auth/login", "refresh": "/auth/refresh"}[name]
        return "POST", f"/api/v1{path}", {}
    author = await authed_user(client)
    if name == "create-content":
        return "POST", "/api/v1/content", author["headers"]
    content = await publish(client, author)
    return "PATCH", f"/api/v1/content/{content['id']}", author["headers"]


COMMANDS = ["signup", "login", "refresh", "create-content", "update-content"]


@pytest.mark.parametrize("command", [*COMMANDS, "delete-content", "token-form"])
async def test_body_over_one_mib_is_413(client: httpx.AsyncClient, command: str) -> None:
    paths = {
        "delete-content": ("DELETE", f"/api/v1/content/{uuid.uuid4()}", {}),
        "token-form": ("POST", "/api/v1/auth/token", {}),
    }
    method, path, headers = paths.get(command) or await _command(client, command)
    body = b'{"title": "' + b"x" * ONE_MIB + b'"}'
    response = await client.request(
        method, path, content=body, headers={"content-type": "application/json", **headers}
    )
    assert_refused(response, 413, "payload_too_large")


async def test_content_just_over_its_field_limit_is_422_not_413(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    body = {"title": "Long read", "content": "x" * 50_001}
    response = await client.post("/api/v1/content", json=body, headers=author["headers"])
    problem = assert_refused(response, 422, "validation_error")
    assert [e["pointer"] for e in problem["errors"]] == ["/content"]


MALFORMED = {
    "truncated": b'{"name": "Ada"',
    "missing-value": b'{"name": }',
    "single-quotes": b"{'name': 'Ada'}",
    "trailing-garbage": b'{"name": "Ada"} trailing',
    "not-utf8": b'{"name": "\xff\xfe"}',
    "utf16-bom": "{}".encode("utf-16"),
    "empty": b"",
    "null": b"null",
    "array": b"[]",
    "string": b'"Ada"',
    "nan": b"NaN",
    "control-byte": b'{"name": "a\x01b"}',
}


async def _send_each(
    client: httpx.AsyncClient, command: str, bodies: dict[str, bytes]
) -> dict[str, httpx.Response]:
    method, path, headers = await _command(client, command)
    return {
        name: await client.request(
            method, path, content=body, headers={"content-type": "application/json", **headers}
        )
        for name, body in bodies.items()
    }


@pytest.mark.parametrize("command", COMMANDS)
async def test_malformed_json_is_422(client: httpx.AsyncClient, command: str) -> None:
    for name, response in (await _send_each(client, command, MALFORMED)).items():
        assert response.status_code == 422, name
        assert_refused(response, 422, "validation_error")


DEEP = {
    "10k-arrays": b"[" * 10_000 + b"]" * 10_000,
    "10k-objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "100k-unclosed": b"[" * 100_000,
    "deep-inside-a-field": b'{"name": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
}


@pytest.mark.parametrize("command", COMMANDS)
async def test_deeply_nested_json_is_422(client: httpx.AsyncClient, command: str) -> None:
    for name, response in (await _send_each(client, command, DEEP)).items():
        assert response.status_code == 422, name
        assert_refused(response, 422, "validation_error")


def _valid_body(command: str) -> dict[str, Any]:
    return {
        "signup": signup_body(),
        "login": {"email": "ada@example.com", "password": "correct horse battery"},
        "refresh": {"refresh_token": "x.y.z"},
        "create-content": {"title": "A title", "content": "Some content, long enough."},
        "update-content": {"title": "A new title"},
    }[command]


WRONG_TYPES = {
    "text-plain": "text/plain",
    "xml": "application/xml",
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data; boundary=inkwell",
    "none": None,
}


@pytest.mark.parametrize("command", COMMANDS)
async def test_a_valid_json_body_under_another_media_type_is_422(
    client: httpx.AsyncClient, command: str
) -> None:
    """The body passes validation as application/json: the media type alone refuses it."""
    method, path, headers = await _command(client, command)
    for name, media_type in WRONG_TYPES.items():
        sent = dict(headers) if media_type is None else {**headers, "content-type": media_type}
        response = await client.request(
            method, path, content=raw_json(_valid_body(command)), headers=sent
        )
        assert response.status_code == 422, name
        assert_refused(response, 422, "validation_error")


async def test_the_password_form_refuses_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/token", json={"username": "ada@example.com", "password": "x" * 10}
    )
    problem = assert_refused(response, 422, "validation_error")
    assert {e["pointer"] for e in problem["errors"]} == {"/username", "/password"}
