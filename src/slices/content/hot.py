"""The content slice's hot reads: a cached item and a cached first page, answered from the
cache before the framework routes the request (see `src/middleware/hot_reads.py`).

Each answers only the requests whose cache key it can name exactly as the route would — a
canonical id; no query, or `limit` alone in its plain form — and only with a hit. Anything
else (a miss, a cursor, a filter, a non-canonical spelling) is left to the route, which loads,
validates and fills. Shared entries hold only what anyone may see (`keys.py`), and requests
with credentials never come here, so a hit answers everyone the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from src.core.hot_reads import HotRead
from src.core.resources import Resources
from src.core.validation import canonical_uuid_text
from src.slices.content.keys import ITEM_CACHE, LIST_CACHE, LIST_GENERATION, item_key, list_key

ITEM_TEMPLATE = "/api/v1/content/{content_id}"
LIST_TEMPLATE = "/api/v1/content"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_PLAIN_LIMIT = re.compile(rb"limit=([1-9][0-9]{0,2})")


async def cached_item(
    resources: Resources, params: Mapping[str, str], query: bytes
) -> bytes | None:
    content_id = canonical_uuid_text(params["content_id"])
    if content_id is None:
        return None  # `/content/feed`, `/content/slug`, a malformed id: the router's
    ttl = resources.settings.content_cache_ttl_seconds
    return await resources.cache.peek(ITEM_CACHE, item_key(content_id), ttl)


async def cached_first_page(
    resources: Resources, params: Mapping[str, str], query: bytes
) -> bytes | None:
    limit = DEFAULT_LIMIT
    if query:
        plain = _PLAIN_LIMIT.fullmatch(query)
        if plain is None:
            return None
        limit = int(plain.group(1))
        if limit > MAX_LIMIT:
            return None  # the route answers 422
    key = list_key(None, limit, None)
    ttl = resources.settings.content_cache_ttl_seconds
    return await resources.cache.peek_versioned(LIST_CACHE, LIST_GENERATION, key, ttl)


HOT_READS = (HotRead(ITEM_TEMPLATE, cached_item), HotRead(LIST_TEMPLATE, cached_first_page))
