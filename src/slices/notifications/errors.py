"""Errors of the notifications slice."""

from __future__ import annotations

from src.core.errors.types import NotFound


class NotificationNotFound(NotFound):
    code, detail = "notification_not_found", "No notification of yours has this id."
