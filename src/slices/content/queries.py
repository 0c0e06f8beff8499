"""Content queries: one item (by id or slug), the public lists, a caller's own list, tags.

They read only the read tables (`contents_read` with the author's names and the tags copied
in, `content_tags_read`, `tags_read`, and SQLite's `contents_search`) through the read handle
and the cache. The cached value is the response body itself, so a hit costs one cache
look-up and no serialization.

Drafts: a shared cache entry only ever holds what anyone may see. Loading an item for the
shared entry yields nothing for a draft (so nothing is cached); then, and only then, the
caller's right to see it is checked — its author, or an admin — and the draft is answered
uncached (`Cache-Status: inkwell; fwd=bypass`). Public lists, search and tag counts hold
published items only.

Search: the words of `q` (runs of letters and digits; see `rules.search_terms`) must all
match, in the title or the body. PostgreSQL matches English stems (`running` finds `run`) in
the `tsvector` column and ranks with `ts_rank` (title weighted above body); SQLite's FTS5
table matches each word as a token prefix (`pyth` finds `python`) and ranks by how many of
the words the title holds. Both ranks depend on the item alone, not on the rest of the
collection, so an item's position cannot move between two pages of the same search: the
cursor carries the rank, and paging has no gaps or repeats. Only the newest matches are
ranked, the older ones follow newest first, so a search costs the same at any size
(`relevance`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Uuid,
    and_,
    bindparam,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.sql.expression import ColumnCollection

from src.core.cache.policy import Cache
from src.core.cache.port import CacheStatus
from src.core.db.read import ReadHandle
from src.core.identity import Principal
from src.core.pagination import NEWEST_FIRST, CursorCodec, Keyset, split_page
from src.core.tables import (
    UTCDateTime,
    content_tags_read,
    contents_read,
    follows_read,
    tags_read,
)
from src.slices.content.errors import ContentNotFound
from src.slices.content.events import ContentState
from src.slices.content.keys import (
    ITEM_CACHE,
    LIST_CACHE,
    LIST_GENERATION,
    item_key,
    list_key,
    own_list_key,
    slug_key,
    tags_key,
)
from src.slices.content.relevance import SearchWindow, search_window
from src.slices.content.rules import PUBLISHED
from src.slices.content.schemas import Content, ContentPage, TagCount, TagList

tracer = trace.get_tracer(__name__)

TAGS_CACHE = "tags"

_STATE_COLUMNS = tuple(contents_read.c[field.name] for field in dataclasses.fields(ContentState))
_NEWEST_FIRST = Keyset(contents_read.c.created_at, contents_read.c.id)
_TAGGED_NEWEST_FIRST = Keyset(content_tags_read.c.created_at, content_tags_read.c.content_id)
_IS_PUBLISHED = contents_read.c.status == PUBLISHED


def _state(row: Any) -> ContentState:
    values = {column.name: row._mapping[column.name] for column in _STATE_COLUMNS}
    values["tags"] = tuple(values["tags"])
    return ContentState(**values)


def _body(row: Any) -> bytes:
    return Content.of(_state(row)).model_dump_json().encode()


def _page(rows: Any, limit: int, cursors: CursorCodec, position: Any = None) -> bytes:
    page, next_cursor = split_page(rows, limit, cursors, position)
    items = [Content.of(_state(row)) for row in page]
    return ContentPage(items=items, next_cursor=next_cursor).model_dump_json().encode()


async def _may_see(read: ReadHandle, viewer: Principal | None, row: Any) -> bool:
    """Whether `viewer` may see item `row`: anyone a published one; a draft its author and
    admins only."""
    if row.status == PUBLISHED:
        return True
    if viewer is None:
        return False
    return bool(row.author_id == viewer.user_id) or viewer.is_admin


@dataclass(frozen=True, slots=True)
class _ItemReader:
    """One item through the shared cache, which never holds a draft."""

    read: ReadHandle
    cache: Cache
    ttl: int

    async def answer(
        self, key: str, where: Callable[[], ColumnElement[bool]], viewer: Principal | None
    ) -> tuple[bytes, CacheStatus]:
        """`where` builds the row's condition: only on a miss, since building a SQLAlchemy
        expression costs more than a whole cache hit."""
        unpublished: Any = None

        def statement() -> Select[Any]:
            return select(*_STATE_COLUMNS).where(where())

        async def load_published() -> bytes | None:
            nonlocal unpublished
            row = await self.read.first(statement())
            if row is None or row.status != PUBLISHED:
                unpublished = row
                return None  # nothing for the shared entry
            return _body(row)

        body, status = await self.cache.get_or_load(ITEM_CACHE, key, self.ttl, load_published)
        if body is not None:
            return body, status
        if viewer is None:  # anonymous: nobody's draft is theirs to see
            raise ContentNotFound()
        # This request's load saw no published item, or another request's load answered for
        # it: look again (uncached), and answer a draft only to whoever may see it.
        row = unpublished or await self.read.first(statement())
        if row is None or not await _may_see(self.read, viewer, row):
            raise ContentNotFound()
        return _body(row), ("miss" if row.status == PUBLISHED else "bypass")


@dataclass(frozen=True, slots=True)
class GetContent:
    read: ReadHandle
    cache: Cache
    ttl: int

    async def execute(
        self, content_id: uuid.UUID, viewer: Principal | None = None
    ) -> tuple[bytes, CacheStatus]:
        """The `Content` JSON body and how the cache answered."""
        with tracer.start_as_current_span("content.get") as span:
            span.set_attribute("content.id", str(content_id))
            reader = _ItemReader(self.read, self.cache, self.ttl)
            body, status = await reader.answer(
                item_key(content_id), lambda: contents_read.c.id == content_id, viewer
            )
            span.set_attribute("cache.status", status)
            return body, status


@dataclass(frozen=True, slots=True)
class GetContentBySlug:
    read: ReadHandle
    cache: Cache
    ttl: int

    async def execute(
        self, slug: str, viewer: Principal | None = None
    ) -> tuple[bytes, CacheStatus]:
        with tracer.start_as_current_span("content.get_by_slug") as span:
            span.set_attribute("content.slug", slug)
            reader = _ItemReader(self.read, self.cache, self.ttl)
            body, status = await reader.answer(
                slug_key(slug), lambda: contents_read.c.slug == slug, viewer
            )
            span.set_attribute("cache.status", status)
            return body, status


@dataclass(frozen=True, slots=True)
class ContentFilters:
    """What a public list is narrowed to; `search` is the words of `q` (None: no search;
    empty: a search with no words in it, which finds nothing)."""

    author_id: uuid.UUID | None = None
    tag: str | None = None
    search: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ListContent:
    """The public list: published items, newest first, or by relevance with `q` (ranked
    within the newest `search_window` matches: see `relevance`)."""

    read: ReadHandle
    cache: Cache
    cursors: CursorCodec
    ttl: int
    search_window: int

    async def execute(
        self, limit: int, cursor: str | None, filters: ContentFilters
    ) -> tuple[bytes, CacheStatus]:
        with tracer.start_as_current_span("content.list") as span:
            span.set_attribute("page.limit", limit)
            searching = filters.search is not None
            span.set_attribute("content.search", searching)
            ranked = (  # built only for a search: a plain list's hit allocates nothing more
                search_window(self.read.dialect, _STATE_COLUMNS, self.search_window)
                if searching
                else None
            )
            shape = ranked.shape if ranked is not None else NEWEST_FIRST
            after = self.cursors.decode(cursor, shape) if cursor else None  # 422 before I/O
            load = self._loader(limit, after, filters, ranked)
            key = list_key(filters.author_id, limit, after, filters.tag, filters.search)
            body, status = await self.cache.get_versioned(
                LIST_CACHE, LIST_GENERATION, key, self.ttl, load
            )
            span.set_attribute("cache.status", status)
            return body, status

    def _loader(
        self,
        limit: int,
        after: tuple[Any, ...] | None,
        filters: ContentFilters,
        ranked: SearchWindow | None,  # None: not a search
    ) -> Callable[[], Awaitable[bytes]]:
        async def newest() -> bytes:
            if filters.tag is not None:
                tagged = content_tags_read.c.tag == filters.tag
                if filters.author_id is not None:
                    tagged = and_(tagged, content_tags_read.c.author_id == filters.author_id)
                query = (
                    select(*_STATE_COLUMNS)
                    .select_from(
                        content_tags_read.join(
                            contents_read, contents_read.c.id == content_tags_read.c.content_id
                        )
                    )
                    .where(tagged, _IS_PUBLISHED)
                )
                rows = await self.read.all(_TAGGED_NEWEST_FIRST.page(query, after, limit))
            else:
                query = select(*_STATE_COLUMNS).where(_IS_PUBLISHED)
                if filters.author_id is not None:
                    query = query.where(contents_read.c.author_id == filters.author_id)
                rows = await self.read.all(_NEWEST_FIRST.page(query, after, limit))
            return _page(rows, limit, self.cursors)

        if ranked is None:
            return newest
        search = ranked

        def narrowing(columns: ColumnCollection[str, Any]) -> list[ColumnElement[bool]]:
            conditions: list[ColumnElement[bool]] = []
            if filters.author_id is not None:
                conditions.append(columns.author_id == filters.author_id)
            if filters.tag is not None:
                tagged = select(content_tags_read.c.content_id).where(
                    content_tags_read.c.tag == filters.tag
                )
                conditions.append(columns.id.in_(tagged.scalar_subquery()))
            return conditions

        async def relevant() -> bytes:
            terms = filters.search or ()
            if not terms:
                return ContentPage(items=[], next_cursor=None).model_dump_json().encode()
            page = await search.page(self.read, terms, narrowing, after, limit)
            return _page(page.rows, limit, self.cursors, page.position)

        return relevant


@dataclass(frozen=True, slots=True)
class ListOwnContent:
    """The caller's own items, drafts included, newest first (cached under the caller)."""

    read: ReadHandle
    cache: Cache
    cursors: CursorCodec
    ttl: int

    async def execute(
        self, owner: Principal, status: str | None, limit: int, cursor: str | None
    ) -> tuple[bytes, CacheStatus]:
        with tracer.start_as_current_span("content.list_own") as span:
            span.set_attribute("user.id", str(owner.user_id))
            span.set_attribute("page.limit", limit)
            after = self.cursors.decode(cursor) if cursor else None

            async def load() -> bytes:
                query = select(*_STATE_COLUMNS).where(contents_read.c.author_id == owner.user_id)
                if status is not None:
                    query = query.where(contents_read.c.status == status)
                rows = await self.read.all(_NEWEST_FIRST.page(query, after, limit))
                return _page(rows, limit, self.cursors)

            key = own_list_key(owner.user_id, status, limit, after)
            body, cache_status = await self.cache.get_versioned(
                LIST_CACHE, LIST_GENERATION, key, self.ttl, load
            )
            span.set_attribute("cache.status", cache_status)
            return body, cache_status


@dataclass(frozen=True, slots=True)
class ListTags:
    """Tags of published items, most used first, then by name: one indexed read of the
    counts the projectors keep."""

    read: ReadHandle
    cache: Cache
    ttl: int

    async def execute(self, limit: int) -> tuple[bytes, CacheStatus]:
        with tracer.start_as_current_span("content.tags") as span:
            span.set_attribute("page.limit", limit)

            async def load() -> bytes:
                rows = await self.read.all(
                    select(tags_read.c.name, tags_read.c.count.label("uses"))
                    .where(tags_read.c.count > 0)
                    .order_by(tags_read.c.count.desc(), tags_read.c.name)
                    .limit(limit)
                )
                items = [TagCount(name=row.name, count=row.uses) for row in rows]
                return TagList(items=items).model_dump_json().encode()

            body, status = await self.cache.get_versioned(
                TAGS_CACHE, LIST_GENERATION, tags_key(limit), self.ttl, load
            )
            span.set_attribute("cache.status", status)
            return body, status


# --- the feed ----------------------------------------------------------------------------------
#
# Published items of the authors the caller follows, most recently published first. Whom the
# caller follows is the content slice's own copy, `follows_read` (projected in the follow's
# transaction, so a follow or an unfollow shows on the very next page). The cost must not grow
# with how much the followed authors have written. A page is read by one of two plans:
#
# - The walk: the newest `FEED_WALK` published items (after the cursor) in publication order,
#   `ix_contents_read_status_published_at_id_author_id` read covering, of which the followed
#   authors' are kept. Its cost is fixed; it fills a page whenever the followed authors wrote
#   at least `limit + 1` of those items — which a reader who follows many authors (the costly
#   case of the other plan) does. Within the walked range it holds every followed item, so a
#   full page from it is the feed's page.
# - Per author, when the walk leaves the page short: each followed author's newest items after
#   the cursor are one range of `ix_contents_read_author_id_status_published_at_id`, and no more
#   than a page is read of any author. Its cost follows the number of followed authors.
#
# PostgreSQL: a LATERAL subquery per followed author takes that author's first `limit + 1`
# keys `(published_at, id)` from the index (an index-only scan), the union of them is merged
# and cut to `limit + 1`, and only those rows are fetched whole. SQLite has no LATERAL; a
# correlated `IN (… LIMIT …)` per followed author does the same (SQLite evaluates it once
# per `follows_read` row, over the same index range). See docs/performance.md#the-feed.

_PER_AUTHOR_INDEX = "ix_contents_read_author_id_status_published_at_id"


def _feed_position(row: Any) -> tuple[Any, ...]:
    return (row.published_at, row.id)


def _before_cursor(after: bool) -> list[ColumnElement[bool]]:
    if not after:
        return []
    return [
        tuple_(contents_read.c.published_at, contents_read.c.id)
        < tuple_(bindparam("after_at", type_=UTCDateTime), bindparam("after_id", type_=Uuid))
    ]


def _feed_walk_statement(after: bool) -> Any:
    """The walk (both backends): the followed authors' items among the newest `walk`
    published ones after the cursor, cut to `limit` (the page size + 1), then fetched whole.

    The `LIMIT walk` is inside the subquery, so no planner can turn the walk into a probe per
    followed author: the membership test is applied to the walked keys only."""
    recent = (
        select(contents_read.c.published_at, contents_read.c.id, contents_read.c.author_id)
        .where(contents_read.c.status == PUBLISHED, *_before_cursor(after))
        .order_by(contents_read.c.published_at.desc(), contents_read.c.id.desc())
        # rendered into the SQL when run: a per-process constant, and a PostgreSQL generic
        # plan would otherwise guess at a parameter LIMIT
        .limit(bindparam("walk", type_=Integer, literal_execute=True))
        .subquery("recent")
    )
    followed = select(follows_read.c.followee_id).where(
        follows_read.c.follower_id == bindparam("reader", type_=Uuid)
    )
    keys = (
        select(recent.c.published_at, recent.c.id)
        .where(recent.c.author_id.in_(followed))
        .order_by(recent.c.published_at.desc(), recent.c.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .subquery("page_keys")
    )
    return (
        select(*_STATE_COLUMNS)
        .select_from(keys.join(contents_read, contents_read.c.id == keys.c.id))
        .order_by(keys.c.published_at.desc(), keys.c.id.desc())
    )


def _feed_statement(dialect: str, after: bool) -> Any:
    """The per-author page query for `dialect`, with or without a cursor; parameters
    `reader`, `limit` (the page size + 1) and, after a cursor, `after_at` and `after_id`."""
    reader = bindparam("reader", type_=Uuid)
    limit = bindparam("limit", type_=Integer)
    published = contents_read.c.status == PUBLISHED
    followed = contents_read.c.author_id == follows_read.c.followee_id
    conditions: list[ColumnElement[bool]] = [followed, published, *_before_cursor(after)]
    newest_of_author = (
        select(contents_read.c.published_at, contents_read.c.id)
        .where(*conditions)
        .order_by(contents_read.c.published_at.desc(), contents_read.c.id.desc())
        .limit(limit)
    )
    if dialect == "postgresql":
        per_author = newest_of_author.lateral("per_author")
        keys = (
            select(per_author.c.published_at, per_author.c.id)
            .select_from(follows_read.join(per_author, true()))
            .where(follows_read.c.follower_id == reader)
            .order_by(per_author.c.published_at.desc(), per_author.c.id.desc())
            .limit(limit)
            .subquery("page_keys")
        )
        return (
            select(*_STATE_COLUMNS)
            .select_from(keys.join(contents_read, contents_read.c.id == keys.c.id))
            .order_by(keys.c.published_at.desc(), keys.c.id.desc())
        )
    return _sqlite_feed_statement(after)


def _sqlite_feed_statement(after: bool) -> Any:
    """SQLite: per followed author, the key of its `limit`-th newest item after the cursor (a
    correlated subquery: one seek into the index), then that author's range of the index down
    to it (covering reads); the union sorted and cut to `limit`; only then whole rows.

    Written out because SQLite has no statistics to plan it by: `CROSS JOIN` makes it start
    from the reader's follows and `INDEXED BY` holds it to the feed's index, where its
    planner would otherwise walk every published item."""
    before_cursor = "AND ({t}.published_at, {t}.id) < (:after_at, :after_id)" if after else ""
    sql = f"""
        SELECT {", ".join(f"contents_read.{column.name}" for column in _STATE_COLUMNS)}
        FROM (
            SELECT item.published_at AS published_at, item.id AS id
            FROM follows_read CROSS JOIN contents_read AS item INDEXED BY {_PER_AUTHOR_INDEX}
            WHERE follows_read.follower_id = :reader
              AND item.author_id = follows_read.followee_id
              AND item.status = '{PUBLISHED}'
              {before_cursor.format(t="item")}
              AND item.published_at >= coalesce((
                  SELECT nth.published_at
                  FROM contents_read AS nth INDEXED BY {_PER_AUTHOR_INDEX}
                  WHERE nth.author_id = follows_read.followee_id
                    AND nth.status = '{PUBLISHED}'
                    {before_cursor.format(t="nth")}
                  ORDER BY nth.published_at DESC, nth.id DESC
                  LIMIT 1 OFFSET :limit - 1
              ), '')
            ORDER BY item.published_at DESC, item.id DESC
            LIMIT :limit
        ) AS page_keys
        JOIN contents_read ON contents_read.id = page_keys.id
        ORDER BY page_keys.published_at DESC, page_keys.id DESC
    """  # noqa: S608 (what is interpolated is this module's constants, never a value)
    # '' sorts before every stored timestamp: an author with fewer items gives all of theirs.
    parameters = [bindparam("reader", type_=Uuid), bindparam("limit", type_=Integer)]
    if after:
        parameters += [
            bindparam("after_at", type_=UTCDateTime),
            bindparam("after_id", type_=Uuid),
        ]
    return text(sql).bindparams(*parameters).columns(*_STATE_COLUMNS)


# Built once per backend and shape: a statement's construction costs more than its (cached)
# compilation.
_FEED_WALKS = {after: _feed_walk_statement(after) for after in (False, True)}
_FEED_STATEMENTS = {
    (dialect, after): _feed_statement(dialect, after)
    for dialect in ("postgresql", "sqlite")
    for after in (False, True)
}


@dataclass(frozen=True, slots=True)
class ListFeed:
    """The caller's feed: published items of the authors they follow, newest first.

    Not cached: it is the caller's alone and changes with every follow. A page is the walk's
    when the walk fills it, else the per-author plan's (above): one statement of fixed cost,
    or that and one whose cost follows the number of followed authors."""

    read: ReadHandle
    cursors: CursorCodec
    walk: int  # `FEED_WALK`: newest published items the walk reads (0: no walk)

    async def execute(self, reader: Principal, limit: int, cursor: str | None) -> bytes:
        """The `ContentPage` JSON body."""
        with tracer.start_as_current_span("content.feed") as span:
            span.set_attribute("user.id", str(reader.user_id))
            span.set_attribute("page.limit", limit)
            after = self.cursors.decode(cursor) if cursor else None  # 422 before any I/O
            parameters: dict[str, Any] = {"reader": reader.user_id, "limit": limit + 1}
            if after is not None:
                parameters["after_at"], parameters["after_id"] = after
            rows: Sequence[Any] = ()
            if self.walk > limit:  # a shorter walk can never fill the page
                rows = await self.read.all(
                    _FEED_WALKS[after is not None], {**parameters, "walk": self.walk}
                )
            walked = len(rows) > limit
            span.set_attribute("feed.plan", "walk" if walked else "per_author")
            if not walked:
                statement = _FEED_STATEMENTS[(self.read.dialect, after is not None)]
                rows = await self.read.all(statement, parameters)
            return _page(rows, limit, self.cursors, _feed_position)
