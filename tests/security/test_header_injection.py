"""Header injection in X-Request-ID, X-Correlation-ID, Idempotency-Key and Authorization.

httpx refuses CR/LF in header values, so these requests go straight through the ASGI
interface with raw header bytes, as a lenient server or proxy could hand them over. A hostile
id is replaced by a fresh one (never echoed into a response header, body or log); a hostile
Idempotency-Key is a 400 `invalid_idempotency_key` and nothing is written; a hostile
Authorization is a 401 with `WWW-Authenticate: Bearer`.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from tests.helpers import authed_user, content_body
from tests.security.hostile import RawResponse, asgi_request, raw_json

HOSTILE_VALUES = {
    "crlf-header": b"abc\r\nSet-Cookie: session=stolen",
    "lf-only": b"abc\nX-Injected: 1",
    "nul": b"abc\x00def",
    "10kB": b"a" * 10_000,
    "latin1-bytes": b"caf\xe9\xff",
    "space": b"two words",
    "empty": b"",
}
FRESH_ID = re.compile(rb"^[0-9a-f]{32}$")


def _app(client: httpx.AsyncClient) -> ASGIApp:
    return client.app  # type: ignore[attr-defined,no-any-return]


def _assert_clean_headers(response: RawResponse) -> None:
    for name, value in response.headers:
        assert not set(value) & set(b"\r\n\x00"), name
        assert name not in (b"set-cookie", b"x-injected")


@pytest.mark.parametrize("header", [b"x-request-id", b"x-correlation-id"])
@pytest.mark.parametrize("value", HOSTILE_VALUES.values(), ids=list(HOSTILE_VALUES))
async def test_hostile_request_ids_are_replaced_not_echoed(
    client: httpx.AsyncClient, header: bytes, value: bytes
) -> None:
    response = await asgi_request(_app(client), "GET", "/api/v1/no-such-route", [(header, value)])
    assert response.status == 404
    _assert_clean_headers(response)
    request_id = response.header(b"x-request-id")
    correlation_id = response.header(b"x-correlation-id")
    assert FRESH_ID.match(request_id or b"")
    assert FRESH_ID.match(correlation_id or b"")
    problem = response.json()
    assert problem["code"] == "not_found"
    assert problem["request_id"] == request_id.decode()
    if value:
        assert value not in response.body


async def test_a_sane_request_id_is_still_echoed(client: httpx.AsyncClient) -> None:
    """The control for the test above."""
    response = await asgi_request(
        _app(client), "GET", "/api/v1/no-such-route", [(b"x-request-id", b"req-42")]
    )
    assert response.header(b"x-request-id") == b"req-42"


IDEMPOTENCY_KEYS = {
    **HOSTILE_VALUES,
    "256-chars": b"k" * 256,
    "unterminated-quote": b'"abc',
    "bare-quote-inside": b'ab"c',
    "bad-escape": b'"a\\bc"',
}


async def test_hostile_idempotency_keys_are_400_and_write_nothing(
    client: httpx.AsyncClient,
) -> None:
    author = await authed_user(client)
    authorization = author["headers"]["Authorization"].encode()
    for name, key in IDEMPOTENCY_KEYS.items():
        response = await asgi_request(
            _app(client),
            "POST",
            "/api/v1/content",
            [
                (b"authorization", authorization),
                (b"content-type", b"application/json"),
                (b"idempotency-key", key),
            ],
            raw_json(content_body()),
        )
        assert response.status == 400, name
        _assert_clean_headers(response)
        problem: dict[str, Any] = response.json()
        assert problem["code"] == "invalid_idempotency_key", name
        assert response.header(b"content-type") == b"application/problem+json"
        if key:
            assert key not in response.body, name
        assert authorization not in response.body
    listed = await client.get("/api/v1/content")
    assert listed.json()["items"] == []


AUTHORIZATIONS = {
    "crlf": (b"Bearer abc\r\nX-Injected: 1", "invalid_token"),
    "nul": (b"Bearer \x00", "invalid_token"),
    "10kB-token": (b"Bearer " + b"a" * 10_000, "invalid_token"),
    "latin1-bytes": (b"Bearer caf\xe9", "invalid_token"),
    "scheme-only": (b"Bearer", "not_authenticated"),
    "basic-scheme": (b"Basic YWRhOnBhc3N3b3Jk", "not_authenticated"),
    "empty": (b"", "not_authenticated"),
}


@pytest.mark.parametrize(("value", "code"), AUTHORIZATIONS.values(), ids=list(AUTHORIZATIONS))
async def test_hostile_authorization_headers_are_401(
    client: httpx.AsyncClient, value: bytes, code: str
) -> None:
    response = await asgi_request(
        _app(client),
        "POST",
        "/api/v1/content",
        [(b"authorization", value), (b"content-type", b"application/json")],
        raw_json(content_body()),
    )
    assert response.status == 401
    _assert_clean_headers(response)
    assert response.header(b"www-authenticate") == b"Bearer"
    assert response.json()["code"] == code
    if len(value) > len(b"Bearer "):
        assert value[len(b"Bearer ") :] not in response.body
