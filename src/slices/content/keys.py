"""Cache keys of the content read model, shared by its commands (invalidate) and queries."""

from __future__ import annotations

import uuid

ITEM_CACHE = "content"
LIST_CACHE = "content_list"
LIST_GENERATION = "content:list:generation"


def item_key(content_id: uuid.UUID) -> str:
    return f"content:{content_id}"


def list_key(author_id: uuid.UUID | None, limit: int, cursor: str | None) -> str:
    return f"content:list:{author_id or '*'}:{limit}:{cursor or ''}"
