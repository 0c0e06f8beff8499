from __future__ import annotations

import pytest
from pydantic import ValidationError

from src.settings import DEFAULT_JWT_SECRET, Settings


def test_production_refuses_the_default_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(app_env="production", jwt_secret=DEFAULT_JWT_SECRET)


def test_production_refuses_a_short_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(app_env="production", jwt_secret="short")


def test_production_starts_with_a_real_secret() -> None:
    settings = Settings(app_env="production", jwt_secret="k" * 48)
    assert settings.effective_log_format == "json"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "false")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u@db/inkwell")
    settings = Settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.rate_limit_enabled is False
    assert settings.effective_read_database_url == "postgresql+asyncpg://u@db/inkwell"


def test_signup_role_is_creator_unless_set_to_viewer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().signup_role == "creator"
    monkeypatch.setenv("SIGNUP_ROLE", "viewer")
    assert Settings().signup_role == "viewer"
    monkeypatch.setenv("SIGNUP_ROLE", "admin")  # admins are promoted, never signed up
    with pytest.raises(ValidationError):
        Settings()
