"""Published content as the offline AI provider's sources: the `Search` callable that
`src/main.py` injects into `src.core.ai.offline.OfflineProvider` (core imports no slice).

It is the public list's own full-text search (`ListContent` with `q`), through the same cache,
so it sees exactly what any reader may see: published items, never a draft."""

from __future__ import annotations

import json
from collections.abc import Sequence

from src.core.ai.offline import Search, Source, excerpt_of
from src.core.cache.policy import Cache
from src.core.db.read import ReadHandle
from src.core.pagination import CursorCodec
from src.slices.content.queries import ContentFilters, ListContent
from src.slices.content.rules import search_terms


def published_search(
    read: ReadHandle, cache: Cache, cursors: CursorCodec, ttl: int, window: int
) -> Search:
    query = ListContent(read, cache, cursors, ttl, window)

    async def search(words: tuple[str, ...], limit: int) -> Sequence[Source]:
        terms = search_terms(" ".join(words))
        if not terms:
            return []
        body, _ = await query.execute(limit, None, ContentFilters(search=terms))
        return [
            Source(title=item["title"], slug=item["slug"], excerpt=excerpt_of(item["content"]))
            for item in json.loads(body)["items"]
        ]

    return search
