"""Cache keys of the content read model, shared by its commands (invalidate) and queries.

Only what anyone may see is cached under a shared key: a published item (by id and by slug),
the public lists and the tag counts. A draft is never cached; a caller's own list (drafts
included) is cached under a key that names the caller, so it is only ever served to them.
List keys are derived from every filter value (a search by its normalized terms) and the
decoded cursor position — never the client's spelling of the cursor — and live under one
generation, bumped by every content write.
"""

from __future__ import annotations

import hashlib
import uuid

import orjson

from src.core.pagination import position_key

ITEM_CACHE = "content"
LIST_CACHE = "content_list"
LIST_GENERATION = "content:list:generation"


def item_key(content_id: uuid.UUID | str) -> str:
    """An item's key, from its id or the id's canonical text (`canonical_uuid_text`)."""
    return f"content:{content_id}"


def slug_key(slug: str) -> str:
    return f"content:slug:{slug}"


def _digest(*parts: object) -> str:
    """A fixed-length key part for values of any length (search terms, cursors)."""
    return hashlib.sha256(orjson.dumps(parts, default=str)).hexdigest()[:32]


def list_key(
    author_id: uuid.UUID | None,
    limit: int,
    after: tuple[object, ...] | None,
    tag: str | None = None,
    search: tuple[str, ...] | None = None,
) -> str:
    """`after`: the decoded cursor. `search`: the words of `q` (None when there is no `q`, so a
    search that has no words never shares a key with the unfiltered list)."""
    return f"content:list:{_digest(author_id, tag, search, limit, position_key(after))}"


def own_list_key(
    owner_id: uuid.UUID, status: str | None, limit: int, after: tuple[object, ...] | None
) -> str:
    return f"content:own:{owner_id}:{_digest(status, limit, position_key(after))}"


def tags_key(limit: int) -> str:
    return f"content:tags:{limit}"
