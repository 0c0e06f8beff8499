"""The AI settings: defaults from the contract, and a provider that cannot work is refused at
start-up rather than at the first call."""

from __future__ import annotations

import pytest

from src.settings import Settings


def test_ai_defaults_follow_the_contract() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.ai_provider == "offline"
    assert settings.ai_timeout_seconds == 30
    assert settings.ai_context_messages == 20
    assert settings.ai_daily_token_budget == 100_000
    assert settings.ai_api_key is None


def test_openai_without_an_endpoint_or_model_is_refused() -> None:
    with pytest.raises(ValueError, match="AI_BASE_URL and AI_MODEL"):
        Settings(_env_file=None, ai_provider="openai", ai_model="m")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="AI_BASE_URL and AI_MODEL"):
        Settings(_env_file=None, ai_provider="openai", ai_base_url="http://x/v1")  # type: ignore[call-arg]


def test_a_base_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="AI_BASE_URL must be an http"):
        Settings(_env_file=None, ai_provider="openai", ai_model="m", ai_base_url="127.0.0.1:11434")  # type: ignore[call-arg]


def test_the_key_is_masked_in_the_settings_repr() -> None:
    settings = Settings(_env_file=None, ai_api_key="sk-very-secret-value")  # type: ignore[call-arg]
    assert "sk-very-secret-value" not in repr(settings)
    assert "sk-very-secret-value" not in str(settings.model_dump())
