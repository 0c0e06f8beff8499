"""The conversations operations in the OpenAPI schema: ids, errors, and the stream."""

from __future__ import annotations

import httpx

BASE = "/api/v1/conversations"


async def test_the_five_operations_have_their_ids_and_documented_errors(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    expected = {
        ("post", BASE): ("createConversation", {"201", "401", "422"}),
        ("get", BASE): ("listConversations", {"200", "401", "422"}),
        ("get", f"{BASE}/{{conversation_id}}/messages"): (
            "listConversationMessages",
            {"200", "401", "404", "422"},
        ),
        ("delete", f"{BASE}/{{conversation_id}}"): (
            "deleteConversation",
            {"204", "401", "404", "422"},
        ),
        ("post", f"{BASE}/{{conversation_id}}/messages"): (
            "sendConversationMessage",
            {"200", "201", "401", "404", "422", "429", "503"},
        ),
    }
    for (method, path), (operation_id, statuses) in expected.items():
        operation = paths[path][method]
        assert operation["operationId"] == operation_id
        assert statuses <= set(operation["responses"]), (operation_id, operation["responses"])
    assert set(paths[BASE]) == {"get", "post"}
    assert set(paths[f"{BASE}/{{conversation_id}}"]) == {"delete"}


async def test_sending_documents_the_stream_the_quota_and_the_provider_failure(
    client: httpx.AsyncClient,
) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"][
        f"{BASE}/{{conversation_id}}/messages"
    ]["post"]
    responses = operation["responses"]
    assert "text/event-stream" in responses["200"]["content"]
    assert "event: done" in responses["200"]["description"]
    assert "application/json" in responses["201"]["content"]
    assert "ai_quota_exceeded" in responses["429"]["description"]
    assert "rate_limited" in responses["429"]["description"]
    assert "ai_unavailable" in responses["503"]["description"]
    assert "service_unavailable" in responses["503"]["description"]
    for status in ("429", "503"):
        assert "Retry-After" in responses[status]["headers"]
        assert "application/problem+json" in responses[status]["content"]
