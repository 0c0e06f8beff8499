"""Content queries: `GetContent` and `ListContent`.

They read only `contents_read` (author names copied in: no joins) on the read engine, through
the cache. The cached value is the response body itself, so a hit costs one cache round trip
and no serialization.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from src.core.cache import Cache, CacheStatus
from src.core.pagination import CursorCodec
from src.core.tables import contents_read
from src.slices.content.errors import ContentNotFound
from src.slices.content.keys import ITEM_CACHE, LIST_CACHE, LIST_GENERATION, item_key, list_key
from src.slices.content.schemas import Author, Content, ContentPage

tracer = trace.get_tracer(__name__)


def _content(row: Any) -> Content:
    return Content(
        id=row.id,
        title=row.title,
        content=row.body,
        image=row.image,
        author=Author(id=row.author_id, name=row.author_name, display_name=row.author_display_name),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True, slots=True)
class GetContent:
    engine: AsyncEngine
    cache: Cache
    ttl: int

    async def execute(self, content_id: uuid.UUID) -> tuple[bytes, CacheStatus]:
        """The `Content` JSON body and how the cache answered."""
        with tracer.start_as_current_span("content.get") as span:
            span.set_attribute("content.id", str(content_id))

            async def load() -> bytes | None:
                async with self.engine.connect() as connection:
                    row = (
                        await connection.execute(
                            select(contents_read).where(contents_read.c.id == content_id)
                        )
                    ).first()
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
    engine: AsyncEngine
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
                query: Select[Any] = select(contents_read).order_by(
                    contents_read.c.created_at.desc(), contents_read.c.id.desc()
                )
                if author_id is not None:
                    query = query.where(contents_read.c.author_id == author_id)
                if after is not None:
                    query = query.where(
                        tuple_(contents_read.c.created_at, contents_read.c.id) < after
                    )
                async with self.engine.connect() as connection:
                    rows = (await connection.execute(query.limit(limit + 1))).all()
                items = [_content(row) for row in rows[:limit]]
                next_cursor = None
                if len(rows) > limit:
                    next_cursor = self.cursors.encode(items[-1].created_at, items[-1].id)
                return ContentPage(items=items, next_cursor=next_cursor).model_dump_json().encode()

            body, status = await self.cache.get_versioned(
                LIST_CACHE, LIST_GENERATION, list_key(author_id, limit, cursor), self.ttl, load
            )
            span.set_attribute("cache.status", status)
            return body, status
