"""Content queries: `GetContent` and `ListContent`.

They read only `contents_read` (author names copied in: no joins) through the read handle and
the cache. The cached value is the response body itself, so a hit costs one cache look-up and no
serialization.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from sqlalchemy import select

from src.core.cache.policy import Cache
from src.core.cache.port import CacheStatus
from src.core.db.read import ReadHandle
from src.core.pagination import CursorCodec, Keyset, split_page
from src.core.tables import contents_read
from src.slices.content.errors import ContentNotFound
from src.slices.content.events import ContentState
from src.slices.content.keys import ITEM_CACHE, LIST_CACHE, LIST_GENERATION, item_key, list_key
from src.slices.content.schemas import Content, ContentPage

tracer = trace.get_tracer(__name__)

_NEWEST_FIRST = Keyset(contents_read.c.created_at, contents_read.c.id)


def _content(row: Any) -> Content:
    return Content.of(ContentState(**row._mapping))


@dataclass(frozen=True, slots=True)
class GetContent:
    read: ReadHandle
    cache: Cache
    ttl: int

    async def execute(self, content_id: uuid.UUID) -> tuple[bytes, CacheStatus]:
        """The `Content` JSON body and how the cache answered."""
        with tracer.start_as_current_span("content.get") as span:
            span.set_attribute("content.id", str(content_id))

            async def load() -> bytes | None:
                row = await self.read.first(
                    select(contents_read).where(contents_read.c.id == content_id)
                )
                return None if row is None else _content(row).model_dump_json().encode()

            body, status = await self.cache.get_or_load(
                ITEM_CACHE, item_key(content_id), self.ttl, load
            )
            span.set_attribute("cache.status", status)
            if body is None:
                raise ContentNotFound()
            return body, status


@dataclass(frozen=True, slots=True)
class ListContent:
    read: ReadHandle
    cache: Cache
    cursors: CursorCodec
    ttl: int

    async def execute(
        self, limit: int, cursor: str | None, author_id: uuid.UUID | None
    ) -> tuple[bytes, CacheStatus]:
        with tracer.start_as_current_span("content.list") as span:
            span.set_attribute("page.limit", limit)
            after = self.cursors.decode(cursor) if cursor else None  # 422 before any I/O

            async def load() -> bytes:
                query = select(contents_read)
                if author_id is not None:
                    query = query.where(contents_read.c.author_id == author_id)
                rows = await self.read.all(_NEWEST_FIRST.page(query, after, limit))
                page, next_cursor = split_page(rows, limit, self.cursors)
                items = [_content(row) for row in page]
                return ContentPage(items=items, next_cursor=next_cursor).model_dump_json().encode()

            body, status = await self.cache.get_versioned(
                LIST_CACHE, LIST_GENERATION, list_key(author_id, limit, after), self.ttl, load
            )
            span.set_attribute("cache.status", status)
            return body, status
