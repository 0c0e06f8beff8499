"""The bearer token is verified once per request, however many layers need the caller."""

from __future__ import annotations

from typing import Any

import pytest

from src.core.security import TokenService
from tests.helpers import assert_problem, authed_user, bearer, content_body


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = TokenService.decode

    def counting(self: TokenService, token: str, expected: Any) -> Any:
        seen.append(token)
        return original(self, token, expected)

    monkeypatch.setattr(TokenService, "decode", counting)
    return seen


async def test_a_keyed_authenticated_command_decodes_its_token_once(
    make_client: Any, decodes: list[str]
) -> None:
    async with make_client(rate_limit_enabled=True) as client:
        author = await authed_user(client)
        decodes.clear()
        response = await client.post(
            "/api/v1/content",
            json=content_body(),
            headers={**author["headers"], "Idempotency-Key": "decode-once"},
        )
    assert response.status_code == 201, response.text
    assert len(decodes) == 1  # rate limit, idempotency scope and route share one decode


async def test_an_invalid_token_is_still_refused_by_the_route(
    make_client: Any, decodes: list[str]
) -> None:
    async with make_client(rate_limit_enabled=True) as client:
        response = await client.post(
            "/api/v1/content",
            json=content_body(),
            headers={**bearer("not-a-jwt"), "Idempotency-Key": "bad-token"},
        )
    assert_problem(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == "Bearer"
    assert len(decodes) == 1


async def test_the_session_check_is_a_client_span_of_the_request(
    client: Any, recorded_spans: Any
) -> None:
    """The look-up runs on the driver's own connection, which the SQLAlchemy instrumentation
    does not see: it still shows in the request's trace."""
    from opentelemetry.trace import SpanKind

    from tests.observability.test_tracing import descends_from, in_trace

    user = await authed_user(client)
    trace_id = "ab" * 16
    response = await client.get(
        "/api/v1/users/me",
        headers={**user["headers"], "traceparent": f"00-{trace_id}-{'cd' * 8}-01"},
    )
    assert response.status_code == 200
    spans = in_trace(recorded_spans, trace_id)
    [server] = [span for span in spans if span.kind == SpanKind.SERVER]
    [check] = [span for span in spans if span.name == "SELECT sessions"]
    assert check.kind == SpanKind.CLIENT
    assert descends_from(check, server, spans)
    assert check.attributes["db.collection.name"] == "sessions"
    assert check.attributes["db.system.name"] in ("sqlite", "postgresql")
