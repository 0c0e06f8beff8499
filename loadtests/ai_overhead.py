"""What the AI provider port costs per call, and how fast each failure is answered.

Against the fake OpenAI-compatible server (`tests/ai/fake_provider.py`) run as a process of
its own on 127.0.0.1 (so the two event loops share no interpreter lock), through
`OpenAICompatibleProvider` as shipped:

1. streaming: the time to the first streamed token through the adapter, minus the fake's own
   time from receiving the request to writing its first chunk — the port's overhead on the
   first token (loopback, httpx, the SSE parsing);
2. non-streaming: a whole `complete()` call, minus the fake's own time to build the answer;
   and a bare `httpx` POST of the same request beside it (what the adapter adds to httpx);
3. the failure answers: how long `AIUnavailable` takes to arrive for a provider that never
   answers (`AI_TIMEOUT_SECONDS=1`), a refused connection, a 500 and a 429;
4. what the token budget adds to each call, on an embedded SQLite file: the admission (its own
   short write transaction) and the charge (one UPDATE in a command's transaction).

It prints figures (median, p90, p99 in ms) and asserts nothing: a machine shared with other
work is noisy, so compare lines of one run, not runs.

    .venv/bin/python loadtests/ai_overhead.py [--iterations 300]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.core.ai.openai_compatible import OpenAICompatibleProvider
from src.core.ai.port import AIUnavailable, ChatMessage, Completion
from src.core.ai.prompts import DRAFT_SYSTEM_PROMPT

MESSAGES = (
    ChatMessage("system", DRAFT_SYSTEM_PROMPT),
    ChatMessage("user", "Measuring the overhead of an AI provider port"),
)


def _ms(values: list[float]) -> str:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (
        f"median {statistics.median(ordered) * 1000:7.3f}  p90 {at(0.9):7.3f}  "
        f"p99 {at(0.99):7.3f} ms  (n={len(ordered)})"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _control(client: httpx.AsyncClient, base: str, **wanted: object) -> dict[str, object]:
    if wanted:
        await client.post(f"{base}/control", json=wanted)
        return {}
    figures: dict[str, object] = (await client.get(f"{base}/control")).json()
    return figures


async def measure(iterations: int, port: int) -> None:
    root = f"http://127.0.0.1:{port}"
    base = f"{root}/v1"
    control = httpx.AsyncClient()
    adapter = OpenAICompatibleProvider(base, "fake-model", None, 30.0)
    bare = httpx.AsyncClient()
    body = {
        "model": "fake-model",
        "messages": [{"role": m.role, "content": m.content} for m in MESSAGES],
    }
    try:
        for _ in range(20):  # warm the pools
            await adapter.complete(MESSAGES)
            [piece async for piece in adapter.stream(MESSAGES)]
        await _control(control, root)

        # Interleaved: a stream through the adapter, then the same stream read with bare
        # httpx (what the adapter adds on top of the HTTP client itself).
        stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        first_tokens: list[float] = []
        bare_first: list[float] = []
        order: list[str] = []

        async def through_adapter() -> None:
            start = time.perf_counter()
            first = None
            async for piece in adapter.stream(MESSAGES):
                if first is None and isinstance(piece, str):
                    first = time.perf_counter() - start
            assert first is not None
            assert isinstance(piece, Completion)
            first_tokens.append(first)
            order.append("adapter")

        async def through_httpx() -> None:
            start = time.perf_counter()
            first = None
            async with bare.stream("POST", f"{base}/chat/completions", json=stream_body) as answer:
                async for line in answer.aiter_lines():
                    if first is None and line.startswith("data:"):
                        first = time.perf_counter() - start
            assert first is not None
            bare_first.append(first)
            order.append("bare")

        for n in range(iterations):  # alternating which goes first
            pair = (through_adapter, through_httpx) if n % 2 else (through_httpx, through_adapter)
            for run in pair:
                await run()
        fakes = list((await _control(control, root))["first_token_seconds"])  # type: ignore[call-overload]
        fake_first = [f for f, who in zip(fakes, order, strict=True) if who == "adapter"]
        fake_bare = [f for f, who in zip(fakes, order, strict=True) if who == "bare"]
        overhead = [a - b for a, b in zip(first_tokens, fake_first, strict=True)]
        bare_overhead = [a - b for a, b in zip(bare_first, fake_bare, strict=True)]

        # Interleaved, so both see the same load: the adapter's call, then a bare POST.
        whole: list[float] = []
        raw: list[float] = []
        for _ in range(iterations):
            start = time.perf_counter()
            await adapter.complete(MESSAGES)
            whole.append(time.perf_counter() - start)
            start = time.perf_counter()
            (await bare.post(f"{base}/chat/completions", json=body)).json()
            raw.append(time.perf_counter() - start)
        answers = list((await _control(control, root))["answer_seconds"])  # type: ignore[call-overload]
        fake_answer = answers[0::2]
        whole_overhead = [a - b for a, b in zip(whole, fake_answer, strict=True)]
        raw_overhead = [a - b for a, b in zip(raw, answers[1::2], strict=True)]

        print(f"streaming, first token through the adapter   {_ms(first_tokens)}")
        print(f"  the fake's own time to its first chunk      {_ms(fake_first)}")
        print(f"  => the port's first-token overhead          {_ms(overhead)}")
        print(f"bare httpx stream, first data line           {_ms(bare_first)}")
        print(f"  => bare httpx's first-token overhead        {_ms(bare_overhead)}")
        print(f"non-streaming complete() through the adapter {_ms(whole)}")
        print(f"  the fake's own time to build the answer     {_ms(fake_answer)}")
        print(f"  => the port's per-call overhead             {_ms(whole_overhead)}")
        print(f"bare httpx POST + json() of the same request {_ms(raw)}")
        print(f"  => bare httpx's per-call overhead           {_ms(raw_overhead)}")

        async def failure(provider: OpenAICompatibleProvider, n: int) -> list[float]:
            seconds = []
            for _ in range(n):
                start = time.perf_counter()
                try:
                    await provider.complete(MESSAGES)
                except AIUnavailable:
                    seconds.append(time.perf_counter() - start)
            return seconds

        await _control(control, root, mode="slow", delay=5.0)
        impatient = OpenAICompatibleProvider(base, "fake-model", None, 1.0)
        print(f"failure: no answer, AI_TIMEOUT_SECONDS=1     {_ms(await failure(impatient, 5))}")
        await impatient.aclose()
        await _control(control, root, mode="error", delay=0.0)
        print(f"failure: 500                                 {_ms(await failure(adapter, 50))}")
        await _control(control, root, mode="rate_limited")
        print(f"failure: 429                                 {_ms(await failure(adapter, 50))}")
        refused = OpenAICompatibleProvider(
            f"http://127.0.0.1:{_free_port()}/v1", "fake-model", None, 30.0
        )
        print(f"failure: connection refused                  {_ms(await failure(refused, 50))}")
        await refused.aclose()
        await _control(control, root, mode="ok")
    finally:
        await adapter.aclose()
        await bare.aclose()
        await control.aclose()


async def measure_budget(iterations: int) -> None:
    import datetime as dt
    import tempfile
    import uuid

    from src.core.ai.budget import TokenBudget
    from src.core.db.engines import Database
    from src.core.db.uow import SqlUnitOfWork, command_transaction
    from src.core.events import EventDispatcher
    from src.core.tables import ai_usage, metadata, users
    from src.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{folder}/b.db")  # type: ignore[call-arg]
        database = Database(settings)
        engine = database.write_engine
        user_id = uuid.uuid4()
        now = dt.datetime.now(dt.UTC)
        async with engine.begin() as connection:
            await connection.run_sync(
                lambda sync: metadata.create_all(sync, tables=[users, ai_usage])
            )
            await connection.execute(
                users.insert().values(
                    id=user_id,
                    name="n",
                    email="e@example.com",
                    password_hash="x",  # noqa: S106 - a placeholder row
                    display_name="n",
                    created_at=now,
                    updated_at=now,
                )
            )
        budget = TokenBudget(engine, 10**12, lease_seconds=45, wait_seconds=30)
        admit: list[float] = []
        charge: list[float] = []
        for _ in range(iterations):
            start = time.perf_counter()
            ticket = await budget.admit(user_id)
            admit.append(time.perf_counter() - start)
            start = time.perf_counter()
            async with command_transaction(SqlUnitOfWork(engine, EventDispatcher())) as uow:
                await budget.charge(uow, ticket, 24)
            charge.append(time.perf_counter() - start)
        await database.dispose()
    print(f"budget admission (SQLite, own transaction)   {_ms(admit)}")
    print(f"budget charge + commit (SQLite, alone)       {_ms(charge)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    options = parser.parse_args()
    port = _free_port()
    fake = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "tests.ai.fake_provider", str(port)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        fake.stdout.readline()  # the port, once it listens
        try:
            import uvloop

            uvloop.run(measure(options.iterations, port))
            uvloop.run(measure_budget(options.iterations))
        except ImportError:
            asyncio.run(measure(options.iterations, port))
            asyncio.run(measure_budget(options.iterations))
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    main()
