"""What the conversations slice and the provider port add to a streamed answer, and how fast
the failure answers come.

A real `inkwell` server process (uvicorn, SQLite, JSON logs at WARNING) talks to the fake
OpenAI-compatible provider of the tests (`tests/ai/fake_provider.py`, its own uvicorn in a
thread of this process). For each streamed exchange (a fresh conversation each time, so every
prompt is the same size):

* `service`: from sending `POST /api/v1/conversations/{id}/messages` with `Accept:
  text/event-stream` to reading the first `event: token` off the socket;
* `provider`: the fake's own time from receiving its request to writing its first chunk;
* `overhead` = service − provider: the session check, the history read, the budget's
  admission (a short transaction), the adapter, the SSE framing and two loopback hops.

Then the failure answers, end to end: the provider answering 500, 429 and a body that is not
JSON (503 `ai_unavailable`), the caller's budget spent (429 `ai_quota_exceeded`, the provider
never called), and the provider gone (connection refused, 503). Figures are medians and p90 in
milliseconds; a machine shared with other work makes them noisy — compare lines of one run.

    .venv/bin/python loadtests/chat_stream.py [--iterations 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from src.cli import migrate  # noqa: E402
from tests.ai.fake_provider import FakeProvider  # noqa: E402
from tests.resilience.servers import InkwellProcess  # noqa: E402

SECRET = "chat-stream-benchmark-secret-0123456789abcdef"  # noqa: S105 - a throwaway server


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    return parser.parse_args()


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(value * 1000 for value in seconds)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"{name:<44} median {statistics.median(ms):7.2f} ms   p90 {p90:7.2f} ms   n={len(ms)}"


def account(api: httpx.Client, n: int) -> dict[str, str]:
    body = {"name": f"Bench {n}", "email": f"bench{n}@example.com", "password": "correct horse"}
    assert api.post("/api/v1/signup", json=body).status_code == 201
    login = api.post(
        "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def conversation(api: httpx.Client, auth: dict[str, str]) -> str:
    response = api.post("/api/v1/conversations", json={}, headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def first_token(api: httpx.Client, auth: dict[str, str], conversation_id: str) -> float:
    """Seconds from sending the request to the first token event (then reads to the end)."""
    started = time.perf_counter()
    first = None
    with api.stream(
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": "Suggest a title for a post on tea"},
        headers={**auth, "Accept": "text/event-stream"},
    ) as response:
        assert response.status_code == 200, response.read()
        buffered = b""
        for chunk in response.iter_raw():
            buffered += chunk
            if first is None and b"event: token" in buffered:
                first = time.perf_counter() - started
        assert b"event: done" in buffered, buffered[-300:]
    assert first is not None
    return first


def answer(api: httpx.Client, auth: dict[str, str], conversation_id: str, status: int) -> float:
    started = time.perf_counter()
    response = api.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"content": "hello"},
        headers=auth,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == status, response.text
    return elapsed


def main() -> None:
    args = parse_args()
    fake = FakeProvider().start()
    root = Path(tempfile.mkdtemp(prefix="inkwell-chat-bench-"))
    database = f"sqlite+aiosqlite:///{root / 'inkwell.db'}"
    migrate(database)
    env: dict[str, Any] = {
        "APP_ENV": "production",
        "JWT_SECRET": SECRET,
        "DATABASE_URL": database,
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        "AI_PROVIDER": "openai",
        "AI_BASE_URL": fake.base_url,
        "AI_MODEL": "fake-model",
        "AI_API_KEY": "sk-bench",
        "AI_TIMEOUT_SECONDS": "5",
        "AI_DAILY_TOKEN_BUDGET": "100000000",
    }
    server = InkwellProcess(env, root / "server.log")
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as api:
            auth = account(api, 1)
            for _ in range(10):  # warm-up: pools, prepared statements, the adapter's client
                first_token(api, auth, conversation(api, auth))
            fake.first_token_seconds.clear()
            service: list[float] = []
            for _ in range(args.iterations):
                service.append(first_token(api, auth, conversation(api, auth)))
            provider = list(fake.first_token_seconds)
            overhead = [s - p for s, p in zip(service, provider, strict=True)]
            print(summary("first token through the service", service))
            print(summary("first chunk at the provider (its own)", provider))
            print(summary("overhead: port + slice + hops", overhead))

            target = conversation(api, auth)
            failures = min(args.iterations, 100)
            for mode in ("error", "rate_limited", "malformed"):
                fake.mode = mode
                times = [answer(api, auth, target, 503) for _ in range(failures)]
                print(summary(f"503 ai_unavailable (provider {mode})", times))
            fake.mode = "ok"

            spent = account(api, 2)
            server_budget = conversation(api, spent)
            # spend the whole budget of this user: one call over it is admitted, then 429
            from sqlalchemy import create_engine, text

            engine = create_engine(database.replace("+aiosqlite", ""))
            with engine.begin() as connection:
                connection.execute(text("UPDATE ai_usage SET tokens = 100000000"))
                connection.execute(
                    text(
                        "INSERT INTO ai_usage (user_id, day, tokens, updated_at) "
                        "SELECT id, date('now'), 100000000, CURRENT_TIMESTAMP FROM users "
                        "WHERE NOT EXISTS "
                        "(SELECT 1 FROM ai_usage WHERE ai_usage.user_id = users.id)"
                    )
                )
            engine.dispose()
            calls = fake.calls
            times = [answer(api, spent, server_budget, 429) for _ in range(failures)]
            assert fake.calls == calls
            print(summary("429 ai_quota_exceeded (budget spent)", times))

            fake.stop()  # nothing listens on its port any more
            other = account(api, 3)
            target = conversation(api, other)
            times = [answer(api, other, target, 503) for _ in range(failures)]
            print(summary("503 ai_unavailable (connection refused)", times))
    finally:
        server.stop()
        fake.stop()


if __name__ == "__main__":
    main()
