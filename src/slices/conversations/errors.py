"""Errors of the conversations slice."""

from __future__ import annotations

from src.core.errors.types import NotFound


class ConversationNotFound(NotFound):
    """Also someone else's conversation: to anyone but its owner it does not exist."""

    code, detail = "conversation_not_found", "No conversation of yours has this id."
