"""The AI tests' fixtures (the fake OpenAI-compatible server, settings for each provider)."""

from tests.ai.conftest import fake_provider, fake_provider_server, provider_settings

__all__ = ["fake_provider", "fake_provider_server", "provider_settings"]
