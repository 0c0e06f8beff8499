"""Errors of the users slice."""

from __future__ import annotations

from src.core.errors.types import NotFound


class UserNotFound(NotFound):
    code, detail = "user_not_found", "No user has this id."
