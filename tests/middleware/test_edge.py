from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from loguru import logger
from sqlalchemy.exc import OperationalError
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import Message

from src.observability.logging import flush_logs
from src.slices.signup.commands import SignUp
from tests.helpers import assert_problem, signup_body


async def test_generates_request_id_and_defaults_correlation_to_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health")
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    assert response.headers["x-correlation-id"] == request_id


async def test_echoes_sane_ids(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/health", headers={"X-Request-ID": "abc-123_XYZ.9", "X-Correlation-ID": "flow-7"}
    )
    assert response.headers["x-request-id"] == "abc-123_XYZ.9"
    assert response.headers["x-correlation-id"] == "flow-7"


@pytest.mark.parametrize(
    "hostile",
    [
        "x" * 129,
        "has space",
        "tab\there",
        "café",
    ],
)
async def test_replaces_hostile_or_oversized_request_id(
    client: httpx.AsyncClient, hostile: str
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": hostile.encode("utf-8")})
    assert response.headers["x-request-id"] != hostile
    assert len(response.headers["x-request-id"]) == 32
    assert hostile not in response.text


async def test_problem_bodies_carry_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope", headers={"X-Request-ID": "trace-me-1"})
    assert response.json()["request_id"] == "trace-me-1"


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/v1/users", "/nope"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers


async def test_hsts_only_over_https(client: httpx.AsyncClient) -> None:
    response = await client.get("https://inkwell.test/health")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_cors_allows_only_configured_origins(make_client: Any) -> None:
    async with make_client(cors_origins=["https://app.example"]) as client:
        allowed = await client.options(
            "/api/v1/content",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,idempotency-key",
            },
        )
        denied = await client.get("/api/v1/users", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "idempotency-key" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in denied.headers


async def test_no_cors_headers_without_configured_origins(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


# --- every answer carries the headers, crashes included; each crash is logged once -------------

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_edge_headers(response: httpx.Response) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert len(response.headers["x-request-id"]) == 32
    assert response.headers["x-correlation-id"] == response.headers["x-request-id"]


class ErrorLog:
    """The ERROR records logged while it is open (added after the app configured logging)."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self._sink: int | None = None

    def __enter__(self) -> ErrorLog:
        self._sink = logger.add(lambda message: self.records.append(message.record), level="ERROR")
        return self

    def __exit__(self, *_: object) -> None:
        assert self._sink is not None
        logger.remove(self._sink)


def a_bug() -> Exception:
    return RuntimeError("a bug")


def database_gone() -> Exception:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("gone"))


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [(a_bug, 500, "internal_error"), (database_gone, 503, "service_unavailable")],
    ids=["crash", "dependency-down"],
)
async def test_a_crash_answer_carries_the_security_headers_and_is_logged_once(
    make_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    failure: Callable[[], Exception],
    status: int,
    code: str,
) -> None:
    async def fail(self: SignUp, command: Any) -> Any:
        raise failure()

    monkeypatch.setattr(SignUp, "_sign_up", fail)
    async with make_client() as client:
        with ErrorLog() as errors:
            response = await client.post("/api/v1/signup", json=signup_body())
    assert_problem(response, status, code)
    assert_edge_headers(response)
    assert len(errors.records) == (1 if status == 500 else 0)


async def test_a_crash_another_layer_answered_and_re_raised_is_logged_once(
    make_client: Any,
) -> None:
    """Starlette's ServerErrorMiddleware answers a crash with the application's handler, then
    re-raises it for the server's sake: the edge sends that answer on and logs nothing more."""

    async def explode() -> None:
        raise RuntimeError("inside")

    async with make_client() as client:
        app: FastAPI = client.app  # type: ignore[attr-defined]
        app.router.add_api_route("/test-only/explode", explode)
        handler = app.exception_handlers[Exception]
        app.user_middleware.append(Middleware(ServerErrorMiddleware, handler=handler))
        app.middleware_stack = None  # rebuilt with the inner layer on the next request
        with ErrorLog() as errors:
            response = await client.get("/test-only/explode")
    assert_problem(response, 500, "internal_error")
    assert_edge_headers(response)
    assert len(errors.records) == 1


async def test_the_body_limit_answer_carries_the_security_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/signup",
        content=b"{" + b" " * (1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")
    assert_edge_headers(response)


# --- a body over the limit is 413 on every route, whichever check trips first -------------------


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


async def test_a_chunked_form_over_the_limit_is_413_on_the_token_route(
    client: httpx.AsyncClient,
) -> None:
    """The form parser gives up at its 1,000th field — long before the 1 MiB limit — and that
    answer (a 400, shown as 422) must not win over the body being too large."""
    form = b"username=a&password=b&" + b"x=1&" * 300_000
    response = await client.post(
        "/api/v1/auth/token",
        content=chunked(form),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_a_small_form_with_too_many_fields_is_still_422(client: httpx.AsyncClient) -> None:
    form = b"username=a&password=b&" + b"x=1&" * 2_000
    response = await client.post(
        "/api/v1/auth/token",
        content=chunked(form),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 422, "validation_error")


# --- a client that leaves before the answer is not a server error ------------------------------


async def test_a_client_that_left_mid_body_is_recorded_as_499(
    make_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async with make_client(log_level="INFO") as client:
        await client_leaves_mid_body(client, capsys)


async def client_leaves_mid_body(client: httpx.AsyncClient, capsys: Any) -> None:
    app = client.app  # type: ignore[attr-defined]
    messages: list[Message] = [
        {"type": "http.request", "body": b'{"name": "Ada", "email"', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/signup",
        "raw_path": b"/api/v1/signup",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"inkwell.test"), (b"content-type", b"application/json"),
                    (b"content-length", b"70"), (b"idempotency-key", str(uuid.uuid4()).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("inkwell.test", 80),
    }  # fmt: skip
    capsys.readouterr()
    await app(scope, receive, send)
    metrics = (await client.get("/metrics")).text
    assert 'http_response_status_code="499",http_route="/api/v1/signup"' in metrics
    assert 'http_response_status_code="500"' not in metrics
    flush_logs()  # lines are written by a thread; wait for the ones logged so far
    access = [line for line in capsys.readouterr().out.splitlines() if '"http.access"' in line]
    assert any('"status":499' in line for line in access), access
