"""A real server process, a real socket: the client reads a few token events of a streamed
answer and hangs up. Its message and the partial answer are stored (read back through the
API), and the server's log holds no error."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ai.conftest import FAKE_API_KEY
from tests.ai.fake_provider import FakeProvider, answer_text
from tests.helpers import signup_body
from tests.resilience.servers import InkwellProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def trickling() -> Iterator[FakeProvider]:
    server = FakeProvider(mode="trickle", delay=0.1).start()
    yield server
    server.stop()


def _served(tmp_path: Path, fake: FakeProvider) -> InkwellProcess:
    from src.cli import migrate

    database = f"sqlite+aiosqlite:///{tmp_path / 'inkwell.db'}"
    migrate(database)
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": database,
        "JWT_SECRET": "disconnect-test-secret-long-enough-for-hs256-0123456789",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        "AI_PROVIDER": "openai",
        "AI_BASE_URL": fake.base_url,
        "AI_MODEL": "fake-model",
        "AI_API_KEY": FAKE_API_KEY,
        "AI_TIMEOUT_SECONDS": "30",
    }
    return InkwellProcess(env, tmp_path / "server.log")


def test_a_client_that_hangs_up_mid_stream_leaves_the_partial_answer_and_no_error(
    tmp_path: Path, trickling: FakeProvider
) -> None:
    server = _served(tmp_path, trickling)
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as api:
            body = signup_body()
            assert api.post("/api/v1/signup", json=body).status_code == 201
            login = api.post(
                "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
            )
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            conversation = api.post("/api/v1/conversations", json={}, headers=auth).json()
            path = f"/api/v1/conversations/{conversation['id']}/messages"

            received: list[str] = []
            with (
                httpx.Client(base_url=server.url, timeout=10) as streamer,  # its own socket
                streamer.stream(
                    "POST",
                    path,
                    json={"content": "hello"},
                    headers={**auth, "Accept": "text/event-stream"},
                ) as response,
            ):
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        received.append(json.loads(line[6:])["text"])
                    if len(received) == 3:
                        break
            # leaving the block closes the connection mid-stream

            stored: list[dict[str, str]] = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                stored = api.get(path, headers=auth).json()["items"]
                if len(stored) == 2:
                    break
                time.sleep(0.05)
            listed = api.get("/api/v1/conversations", headers=auth).json()["items"]
    finally:
        server.stop()
    log = server.output()
    assert len(stored) == 2, log
    asked, answered = stored
    assert (asked["role"], asked["content"]) == ("user", "hello")
    assert answered["role"] == "assistant"
    full = answer_text([{"role": "user", "content": "hello"}])
    assert answered["content"].startswith("".join(received))
    assert full.startswith(answered["content"])
    assert len(answered["content"]) < len(full)
    assert listed[0]["message_count"] == 2
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL", "WARNING")] == []
    assert "Traceback" not in log
    access = [line for line in lines if line.get("event") == "http.access"]
    streamed = [
        line
        for line in access
        if line.get("route") == "/api/v1/conversations/{conversation_id}/messages"
        and line.get("method") == "POST"
    ]
    assert [line["status"] for line in streamed] == [200]
