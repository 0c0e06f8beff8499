"""Errors of the content slice."""

from __future__ import annotations

from src.core.errors.types import NotFound


class ContentNotFound(NotFound):
    code, detail = "content_not_found", "No content has this id."
