"""The adapter for any OpenAI-compatible Chat Completions endpoint (`AI_PROVIDER=openai`).

Gemini's OpenAI-compatible endpoint, Ollama, vLLM, llama.cpp's server, OpenAI itself: `POST
{AI_BASE_URL}/chat/completions` with `model` and `messages`, answered whole or, with `stream:
true`, as server-sent events (`data: {chunk}` lines, then `data: [DONE]`;
`stream_options.include_usage` asks for the usage in the last chunk). Usage comes from the
answer; where a server reports none, it is estimated as the text's length / 4.

* One pooled `httpx.AsyncClient` per process (created with the provider in the lifespan,
  closed by `aclose`).
* One deadline, `AI_TIMEOUT_SECONDS`, for the whole call: connecting, sending, waiting and
  reading every chunk (checked around each await, so a server that trickles bytes cannot
  stretch it).
* The key travels only in the `Authorization: Bearer` header. It is kept as a `SecretStr`,
  never formatted into a log line, span, error or `repr`, and no error message quotes the
  provider's answer.
* Every failure — timeout, connection failure, a 5xx, a 429 (its `Retry-After` honoured), any
  other refusal, a body that is not JSON or has no choices — is `AIUnavailable`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from loguru import logger
from pydantic import SecretStr

from src.core.ai.port import (
    AIUnavailable,
    ChatMessage,
    Completion,
    estimate_prompt_tokens,
    estimate_tokens,
)

_DEFAULT_RETRY_AFTER = 5
_MAX_RETRY_AFTER = 3600
_PROBE_CACHE_SECONDS = 5.0


def retry_after_of(response: httpx.Response) -> int:
    """A 429's `Retry-After` (seconds or an HTTP date), bounded; the default without one."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return _DEFAULT_RETRY_AFTER
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return _DEFAULT_RETRY_AFTER
        seconds = when.timestamp() - time.time()
    return min(_MAX_RETRY_AFTER, max(1, math.ceil(seconds)))


def _refusal(response: httpx.Response) -> AIUnavailable:
    status = response.status_code
    if status == 429:
        return AIUnavailable("provider rate limit (429)", retry_after=retry_after_of(response))
    if status >= 500:
        return AIUnavailable(f"provider error ({status})")
    # 400/401/403/404: a wrong key, model or URL; the operator has to act. Logged loudly.
    logger.error("the AI provider refused the request with status {}", status)
    return AIUnavailable(f"provider refused the request ({status})", retry_after=30)


def _usage(data: dict[str, Any]) -> tuple[int, int] | None:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return max(0, prompt), max(0, completion)
    return None


class OpenAICompatibleProvider:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | None,
        timeout_seconds: float,
        *,
        probe_timeout_seconds: float = 2.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._probe_timeout = min(probe_timeout_seconds, timeout_seconds)
        headers = {"Accept": "application/json"}
        if api_key is not None and api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._client = client or httpx.AsyncClient(
            headers=headers,
            # Per-phase bounds as a backstop; the deadline of each call is enforced below.
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            follow_redirects=False,
            trust_env=False,
        )
        self._probed_at = -math.inf
        self._probe_error: AIUnavailable | None = None
        self._probe_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleProvider(base_url={self.base_url!r}, model={self.model!r}, "
            "api_key='**********')"
        )

    def _body(self, messages: Sequence[ChatMessage], *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        url = f"{self.base_url}/chat/completions"
        try:
            async with asyncio.timeout(self.timeout_seconds):
                response = await self._client.post(url, json=self._body(messages, stream=False))
        except TimeoutError:
            raise AIUnavailable(f"no answer within {self.timeout_seconds:g}s") from None
        except httpx.HTTPError as error:
            raise AIUnavailable(f"cannot reach the provider ({type(error).__name__})") from None
        if response.status_code != 200:
            raise _refusal(response)
        try:
            data = response.json()
            text = data["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError):
            raise AIUnavailable("malformed answer from the provider") from None
        if not isinstance(text, str) or not isinstance(data, dict):
            raise AIUnavailable("malformed answer from the provider")
        model = data.get("model") if isinstance(data.get("model"), str) else self.model
        usage = _usage(data) or (estimate_prompt_tokens(messages), estimate_tokens(text))
        return Completion(text, str(model), usage[0], usage[1])

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str | Completion]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_seconds
        request = self._client.build_request(
            "POST",
            f"{self.base_url}/chat/completions",
            json=self._body(messages, stream=True),
            headers={"Accept": "text/event-stream"},
        )
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._client.send(request, stream=True)
        except TimeoutError:
            raise AIUnavailable(f"no answer within {self.timeout_seconds:g}s") from None
        except httpx.HTTPError as error:
            raise AIUnavailable(f"cannot reach the provider ({type(error).__name__})") from None
        try:
            if response.status_code != 200:
                raise _refusal(response)
            parts: list[str] = []
            usage: tuple[int, int] | None = None
            model = self.model
            lines = response.aiter_lines()
            while True:
                # The deadline covers every read, never the time the consumer takes between
                # chunks (a timeout around a `yield` would cancel the consumer instead).
                try:
                    async with asyncio.timeout_at(deadline):
                        line = await anext(lines, None)
                except TimeoutError:
                    raise AIUnavailable(
                        f"no complete answer within {self.timeout_seconds:g}s"
                    ) from None
                except httpx.HTTPError as error:
                    raise AIUnavailable(
                        f"the provider's stream broke ({type(error).__name__})"
                    ) from None
                if line is None:
                    raise AIUnavailable("the provider's stream ended without [DONE]")
                if not line.startswith("data:"):
                    continue  # blank separators, comments (`: keep-alive`), `event:` lines
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    chunk = json.loads(payload)
                    choices = chunk.get("choices") or []
                    delta = choices[0].get("delta") or {} if choices else {}
                    text = delta.get("content")
                except (ValueError, AttributeError, LookupError, TypeError):
                    raise AIUnavailable("malformed chunk from the provider") from None
                if isinstance(chunk.get("model"), str):
                    model = chunk["model"]
                usage = _usage(chunk) or usage
                if isinstance(text, str) and text:
                    parts.append(text)
                    yield text
            whole = "".join(parts)
            prompt, completion = usage or (estimate_prompt_tokens(messages), estimate_tokens(whole))
            yield Completion(whole, model, prompt, completion)
        finally:
            await response.aclose()

    async def ping(self) -> None:
        """`GET {base}/models` with a short timeout; the outcome is kept a few seconds, so
        frequent readiness probes do not become load on the provider."""
        async with self._probe_lock:
            if time.monotonic() - self._probed_at < _PROBE_CACHE_SECONDS:
                if self._probe_error is not None:
                    raise self._probe_error
                return
            self._probe_error = None
            try:
                async with asyncio.timeout(self._probe_timeout):
                    response = await self._client.get(f"{self.base_url}/models")
                if response.status_code >= 500 or response.status_code == 429:
                    self._probe_error = AIUnavailable(f"status {response.status_code}")
            except TimeoutError:
                self._probe_error = AIUnavailable(f"timed out after {self._probe_timeout:g}s")
            except httpx.HTTPError as error:
                self._probe_error = AIUnavailable(type(error).__name__)
            self._probed_at = time.monotonic()
            if self._probe_error is not None:
                raise self._probe_error

    async def aclose(self) -> None:
        await self._client.aclose()
