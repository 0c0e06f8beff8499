"""Cache keys of the content read model, shared by its commands (invalidate) and queries."""

from __future__ import annotations

import uuid

from src.core.pagination import position_key

ITEM_CACHE = "content"
LIST_CACHE = "content_list"
LIST_GENERATION = "content:list:generation"


def item_key(content_id: uuid.UUID) -> str:
    return f"content:{content_id}"


def list_key(author_id: uuid.UUID | None, limit: int, after: tuple[object, ...] | None) -> str:
    """A page by what it is (filter, size, decoded position), never by the client's spelling."""
    return f"content:list:{author_id or '*'}:{limit}:{position_key(after)}"
