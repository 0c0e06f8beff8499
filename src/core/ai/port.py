"""The AI provider port: what the slices need from a chat-completion model, and nothing more.

An `AIProvider` completes a conversation (`complete`) or streams the completion (`stream`:
text chunks as they arrive, then exactly one final `Completion` carrying the whole text and
the token usage). Every failure a provider can have — a timeout, a connection that fails, a
5xx or 429 answer, an answer that cannot be read — is raised as `AIUnavailable`, which the
HTTP layer answers as 503 `ai_unavailable` with `Retry-After`.

Two adapters exist: `offline.OfflineProvider` (deterministic, built from Inkwell's own
published content) and `openai_compatible.OpenAICompatibleProvider` (any OpenAI-compatible
Chat Completions endpoint, over one pooled httpx client).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from src.core.errors.types import AppError

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer: its text, the model that wrote it and the tokens it cost."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class AIProvider(Protocol):
    """A chat-completion model. `name` is the metric label (`offline` | `openai`)."""

    name: str
    model: str

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        """The whole answer at once; `AIUnavailable` on any failure."""
        ...

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str | Completion]:
        """Text chunks as they arrive, then one final `Completion` (the whole text, the
        usage); `AIUnavailable` on any failure, also midway."""
        ...

    async def ping(self) -> None:
        """A cheap check that the provider answers (readiness); raises when it does not."""
        ...

    async def aclose(self) -> None:
        """Release what the provider holds (its HTTP connection pool)."""
        ...


class AIUnavailable(AppError):
    """The provider did not answer usefully: 503 `ai_unavailable` with `Retry-After`.

    `reason` says why, for logs and spans (never for the client, and never holding a key).
    """

    status, code = 503, "ai_unavailable"
    detail = "The AI provider is unavailable; try again shortly."

    def __init__(self, reason: str, *, retry_after: int = 5) -> None:
        self.reason = reason
        self.retry_after = max(1, int(retry_after))
        super().__init__(headers={"Retry-After": str(self.retry_after)})

    def __repr__(self) -> str:
        return f"AIUnavailable(reason={self.reason!r}, retry_after={self.retry_after})"


class AIQuotaExceeded(AppError):
    """The caller's daily token budget is spent: 429 `ai_quota_exceeded` with `Retry-After`
    (the seconds to the next UTC midnight, when the budget starts afresh)."""

    status, code = 429, "ai_quota_exceeded"
    detail = "Your daily AI token budget is used up; it starts afresh at midnight UTC."

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(headers={"Retry-After": str(self.retry_after)})


def estimate_tokens(text: str) -> int:
    """The token count of `text` where no provider reports one: its length / 4, rounded up."""
    return math.ceil(len(text) / 4)


def estimate_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(estimate_tokens(message.content) for message in messages)
