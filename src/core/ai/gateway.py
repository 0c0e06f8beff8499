"""`AIGateway`: how a slice's use case calls the provider within the caller's token budget.

```python
async with resources.ai.call(principal.user_id, "draft") as call:  # admission: 429 / wait
    completion = await call.complete(messages)  # or stream, closed even when left early:
    # async with contextlib.aclosing(call.stream(messages)) as pieces: async for piece in pieces
    await call.charge(uow)  # in the command's transaction, before its other writes
    ...                     # write what the call produced
```

* `call(...)` admits the call (`TokenBudget.admit`): 429 `ai_quota_exceeded` when the day's
  budget is spent. No database connection is held while the provider works.
* `complete` / `stream` run the provider; its failures are `AIUnavailable` (503).
* `charge(uow)` charges the tokens the call used and gives the lease back, in the command's
  unit of work. Leaving the block without charging (a failure, an exception) gives the lease
  back and charges nothing, so a failed call stores nothing.

Metrics go through `AIObserver` (implemented in `src/observability/ai.py`, wired in
`src/main.py`): `ai_requests_total{provider, operation, outcome}`, `ai_tokens_total{provider,
kind}` and `ai_request_duration_seconds{provider, operation, outcome}` (the provider's time,
to its final answer or its failure). Spans with the GenAI attributes come from the
instrumented provider wrapped around the adapter at wiring.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from loguru import logger

from src.core.ai.budget import Ticket, TokenBudget
from src.core.ai.port import AIProvider, AIQuotaExceeded, AIUnavailable, ChatMessage, Completion
from src.core.db.uow import UnitOfWork

Operation = Literal["draft", "chat"]
Outcome = Literal["ok", "unavailable", "quota_exceeded"]


class AIObserver(Protocol):
    def requested(
        self, provider: str, operation: Operation, outcome: Outcome, seconds: float | None
    ) -> None:
        """One call's outcome; `seconds` is how long the provider took (None when it was not
        called: the budget refused the call)."""
        ...

    def used(self, provider: str, completion: Completion) -> None: ...


class _Unobserved:
    def requested(
        self, provider: str, operation: Operation, outcome: Outcome, seconds: float | None
    ) -> None:
        return None

    def used(self, provider: str, completion: Completion) -> None:
        return None


@dataclass
class AICall:
    """One admitted call of one user: run the provider, then charge what it used."""

    provider: AIProvider
    budget: TokenBudget
    observer: AIObserver
    operation: Operation
    ticket: Ticket
    tokens: int = 0
    charged: bool = False
    completions: list[Completion] = field(default_factory=list)

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        started = time.perf_counter()
        try:
            completion = await self.provider.complete(messages)
        except AIUnavailable as error:
            self._failed(error, started)
            raise
        self._record(completion, started)
        return completion

    async def stream(
        self, messages: Sequence[ChatMessage]
    ) -> AsyncGenerator[str | Completion, None]:
        """The provider's chunks, then its final `Completion` (recorded for the charge)."""
        started = time.perf_counter()
        try:
            # Closed here when the consumer stops early (a client that left), so the provider
            # lets its connection go at once rather than when the generator is collected.
            async with contextlib.aclosing(self.provider.stream(messages)) as pieces:
                async for piece in pieces:
                    if isinstance(piece, Completion):
                        self._record(piece, started)
                    yield piece
        except AIUnavailable as error:
            self._failed(error, started)
            raise

    def add_tokens(self, tokens: int) -> None:
        """Count tokens the provider spent without a final `Completion` (a stream the client
        left midway: its partial text, estimated), so they are charged too."""
        self.tokens += max(0, tokens)

    async def charge(self, uow: UnitOfWork) -> None:
        """Charge this call's tokens in the command's transaction (and give the lease back)."""
        await self.budget.charge(uow, self.ticket, self.tokens)
        self.charged = True

    def _failed(self, error: AIUnavailable, started: float) -> None:
        seconds = time.perf_counter() - started
        self.observer.requested(self.provider.name, self.operation, "unavailable", seconds)
        # The reason names the failure (a timeout, a status, an exception type), never the key
        # or the provider's answer.
        logger.warning(
            "AI provider call failed: {} (provider={}, operation={}, retry_after={})",
            error.reason,
            self.provider.name,
            self.operation,
            error.retry_after,
        )

    def _record(self, completion: Completion, started: float) -> None:
        self.completions.append(completion)
        self.tokens += completion.total_tokens
        seconds = time.perf_counter() - started
        self.observer.requested(self.provider.name, self.operation, "ok", seconds)
        self.observer.used(self.provider.name, completion)


@dataclass
class AIGateway:
    provider: AIProvider
    budget: TokenBudget
    observer: AIObserver = field(default_factory=_Unobserved)

    @contextlib.asynccontextmanager
    async def call(self, user_id: uuid.UUID, operation: Operation) -> AsyncIterator[AICall]:
        try:
            ticket = await self.budget.admit(user_id)
        except AIQuotaExceeded:
            self.observer.requested(self.provider.name, operation, "quota_exceeded", None)
            raise
        except AIUnavailable:  # another call of this user stayed in flight: no provider call
            self.observer.requested(self.provider.name, operation, "unavailable", None)
            raise
        call = AICall(self.provider, self.budget, self.observer, operation, ticket)
        try:
            yield call
        finally:
            if not call.charged:
                try:
                    await self.budget.release(ticket)
                except Exception:  # the lease then expires on its own
                    logger.opt(exception=True).warning("could not release an AI lease")
