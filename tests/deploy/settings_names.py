"""The environment variable names `Settings` reads, for checking deployment configuration."""

from __future__ import annotations

from src.settings import Settings


def settings_env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else name.upper())
    return names


def is_known_variable(name: str) -> bool:
    """A Settings field, or a standard OpenTelemetry SDK variable (read by the SDK itself)."""
    return name in settings_env_names() or name.startswith("OTEL_")
