"""Fixtures for the AI tests: the fake OpenAI-compatible server, and settings for each
provider (`offline`, and `openai` pointed at the fake)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.ai.fake_provider import FakeProvider

# What a leaked key would look like in a log, a span or an answer.
FAKE_API_KEY = "sk-inkwell-test-9f3c1a7e5b2d4c6a8e0f"
PROVIDERS = ("offline", "openai")


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProvider]:
    server = FakeProvider().start()
    yield server
    server.stop()


@pytest.fixture
def fake_provider(fake_provider_server: FakeProvider) -> FakeProvider:
    """The fake server, back in `ok` mode with its counters at zero."""
    fake_provider_server.reset()
    return fake_provider_server


def openai_settings(fake: FakeProvider, **overrides: Any) -> dict[str, Any]:
    return {
        "ai_provider": "openai",
        "ai_base_url": fake.base_url,
        "ai_model": "fake-model",
        "ai_api_key": FAKE_API_KEY,
        "ai_timeout_seconds": 2.0,
        **overrides,
    }


@pytest.fixture(params=PROVIDERS)
def provider_settings(
    request: pytest.FixtureRequest, fake_provider: FakeProvider
) -> dict[str, Any]:
    """Settings for each provider in turn: the tests using it run on both."""
    if request.param == "openai":
        return openai_settings(fake_provider)
    return {"ai_provider": "offline"}
