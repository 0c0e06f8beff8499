"""`AIGateway`: how a slice's use case calls the provider within the caller's token budget.

```python
async with resources.ai.call(principal.user_id, "draft") as call:  # admission: 429 / wait
    completion = await call.complete(messages)  # or: async for piece in call.stream(messages)
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
`src/main.py`): `ai_requests_total{provider, operation, outcome}` and `ai_tokens_total{provider,
kind}`. Spans with the GenAI attributes come from the instrumented provider wrapped around the
adapter at wiring.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from loguru import logger

from src.core.ai.budget import Ticket, TokenBudget
from src.core.ai.port import AIProvider, AIQuotaExceeded, AIUnavailable, ChatMessage, Completion
from src.core.db.uow import UnitOfWork

Operation = Literal["draft", "chat"]
Outcome = Literal["ok", "unavailable", "quota_exceeded"]


class AIObserver(Protocol):
    def requested(self, provider: str, operation: Operation, outcome: Outcome) -> None: ...

    def used(self, provider: str, completion: Completion) -> None: ...


class _Unobserved:
    def requested(self, provider: str, operation: Operation, outcome: Outcome) -> None:
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
        try:
            completion = await self.provider.complete(messages)
        except AIUnavailable:
            self.observer.requested(self.provider.name, self.operation, "unavailable")
            raise
        self._record(completion)
        return completion

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str | Completion]:
        """The provider's chunks, then its final `Completion` (recorded for the charge)."""
        try:
            async for piece in self.provider.stream(messages):
                if isinstance(piece, Completion):
                    self._record(piece)
                yield piece
        except AIUnavailable:
            self.observer.requested(self.provider.name, self.operation, "unavailable")
            raise

    def add_tokens(self, tokens: int) -> None:
        """Count tokens the provider spent without a final `Completion` (a stream the client
        left midway: its partial text, estimated), so they are charged too."""
        self.tokens += max(0, tokens)

    async def charge(self, uow: UnitOfWork) -> None:
        """Charge this call's tokens in the command's transaction (and give the lease back)."""
        await self.budget.charge(uow, self.ticket, self.tokens)
        self.charged = True

    def _record(self, completion: Completion) -> None:
        self.completions.append(completion)
        self.tokens += completion.total_tokens
        self.observer.requested(self.provider.name, self.operation, "ok")
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
            self.observer.requested(self.provider.name, operation, "quota_exceeded")
            raise
        except AIUnavailable:
            self.observer.requested(self.provider.name, operation, "unavailable")
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
