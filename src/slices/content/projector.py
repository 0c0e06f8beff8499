"""Keeps the content read models in step with the write tables, inside the command's
transaction:

* `contents_read`: one row per item (drafts included), the author's names and the tags
  copied in; its `search` column holds the item's `tsvector` on PostgreSQL, and on SQLite
  the rowid of its entry in `contents_search`;
* `contents_search` (SQLite only): the FTS5 index of each item's title and body;
* `content_tags_read`: one row per tag of each *published* item, for lists filtered by tag;
* `tags_read`: how many published items carry each tag (a row only while that is positive).

Each handler derives its change from the item's state before and after the event (see
`events.py`), so publishing, unpublishing, editing the tags and deleting all move the counts
by exactly what changed. Tags are visited in alphabetical order, so concurrent transactions
lock count rows in one order and cannot deadlock on them.

A profile edit (`ProfileUpdated`, from the users slice) rewrites the author's names in every
row of that author here, in the edit's own transaction, with one UPDATE over the author's
index range; the rows it rewrote are exactly the cached items (by id and by slug) to drop
once the edit has committed, with every list (the list generation).

Follows (`UserFollowed` / `UserUnfollowed`, from the users slice) are copied into
`follows_read` in the follow's own transaction: the feed, a query of this slice, reads whom its
caller follows from there, and sees a follow on the very next request.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    Uuid,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection

from src.core.cache.policy import Cache
from src.core.events import AfterCommit, EventDispatcher
from src.core.tables import (
    content_tags,
    content_tags_read,
    contents,
    contents_read,
    contents_search,
    follows,
    follows_read,
    tags,
    tags_read,
    users,
)
from src.slices.content.events import (
    ContentCreated,
    ContentDeleted,
    ContentState,
    ContentUpdated,
    public_tags,
)
from src.slices.content.keys import LIST_GENERATION, item_key, slug_key
from src.slices.users.events import ProfileUpdated, UserFollowed, UserUnfollowed

_ENGLISH: ColumnElement[Any] = literal_column("'english'::regconfig")


def search_vector(title: Any, body: Any) -> ColumnElement[Any]:
    """PostgreSQL's search document of an item: its title (weight A) and body (weight B)."""
    return func.setweight(func.to_tsvector(_ENGLISH, title), literal_column("'A'")).op("||")(
        func.setweight(func.to_tsvector(_ENGLISH, body), literal_column("'B'"))
    )


def _is_postgres(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


def _row(connection: AsyncConnection, item: ContentState) -> dict[str, Any]:
    row = dataclasses.asdict(item)
    row["tags"] = list(item.tags)
    if _is_postgres(connection):
        row["search"] = search_vector(item.title, item.body)
    return row


def _search_entry(item: ContentState) -> Any:
    """SQLite: the rowid of the item's full-text entry (what its `contents_read` row holds)."""
    return select(contents_read.c.search).where(contents_read.c.id == item.id).scalar_subquery()


async def _index_tags(
    connection: AsyncConnection, before: ContentState | None, after: ContentState | None
) -> None:
    """`content_tags_read` and `tags_read` follow the item's public tags."""
    was, now = public_tags(before), public_tags(after)
    removed, added = sorted(was - now), sorted(now - was)
    item = after or before
    assert item is not None
    if removed:
        await connection.execute(
            delete(content_tags_read).where(
                content_tags_read.c.content_id == item.id, content_tags_read.c.tag.in_(removed)
            )
        )
        await connection.execute(
            update(tags_read)
            .where(tags_read.c.name.in_(removed))
            .values(count=tags_read.c.count - 1)
        )
        await connection.execute(
            delete(tags_read).where(tags_read.c.name.in_(removed), tags_read.c.count <= 0)
        )
    if added:
        await connection.execute(
            insert(content_tags_read),
            [
                {
                    "tag": tag,
                    "content_id": item.id,
                    "author_id": item.author_id,
                    "created_at": item.created_at,
                }
                for tag in added
            ],
        )
        dialect_insert = postgresql.insert if _is_postgres(connection) else sqlite.insert
        upsert = dialect_insert(tags_read).values([{"name": tag, "count": 1} for tag in added])
        await connection.execute(
            upsert.on_conflict_do_update(
                index_elements=[tags_read.c.name],
                set_={"count": tags_read.c.count + upsert.excluded.count},
            )
        )


async def on_content_created(connection: AsyncConnection, event: ContentCreated) -> None:
    item = event.item
    row = _row(connection, item)
    if not _is_postgres(connection):
        entry = await connection.execute(
            insert(contents_search).values(title=item.title, body=item.body)
        )
        row["search"] = cast(CursorResult[Any], entry).lastrowid
    await connection.execute(insert(contents_read).values(**row))
    await _index_tags(connection, None, item)


async def on_content_updated(connection: AsyncConnection, event: ContentUpdated) -> None:
    item, previous = event.item, event.previous
    row = _row(connection, item)
    for fixed in ("id", "author_id", "author_name", "author_display_name", "created_at"):
        del row[fixed]
    await connection.execute(
        update(contents_read).where(contents_read.c.id == item.id).values(**row)
    )
    text_changed = (item.title, item.body) != (previous.title, previous.body)
    if text_changed and not _is_postgres(connection):
        await connection.execute(
            update(contents_search)
            .where(contents_search.c.rowid == _search_entry(item))
            .values(title=item.title, body=item.body)
        )
    await _index_tags(connection, previous, item)


async def on_content_deleted(connection: AsyncConnection, event: ContentDeleted) -> None:
    item = event.item
    if not _is_postgres(connection):
        await connection.execute(
            delete(contents_search).where(contents_search.c.rowid == _search_entry(item))
        )
    await connection.execute(delete(contents_read).where(contents_read.c.id == item.id))
    await _index_tags(connection, item, None)


@dataclass(frozen=True, slots=True)
class RenameAuthor:
    """`ProfileUpdated` → the author's names in every one of their rows, then their caches."""

    cache: Cache | None  # None where no cache is kept (the CLI)

    async def __call__(
        self, connection: AsyncConnection, event: ProfileUpdated
    ) -> AfterCommit | None:
        if not event.renamed:
            return None
        rewritten = await connection.execute(
            update(contents_read)
            .where(contents_read.c.author_id == event.user_id)
            .values(author_name=event.name, author_display_name=event.display_name)
            .returning(contents_read.c.id, contents_read.c.slug)
        )
        keys = tuple(
            key for content_id, slug in rewritten for key in (item_key(content_id), slug_key(slug))
        )
        cache = self.cache
        if cache is None or not keys:
            return None
        return lambda: cache.invalidate(*keys, generations=(LIST_GENERATION,))


async def on_user_followed(connection: AsyncConnection, event: UserFollowed) -> None:
    await connection.execute(
        insert(follows_read).values(follower_id=event.follower_id, followee_id=event.followee_id)
    )


async def on_user_unfollowed(connection: AsyncConnection, event: UserUnfollowed) -> None:
    await connection.execute(
        delete(follows_read).where(
            follows_read.c.follower_id == event.follower_id,
            follows_read.c.followee_id == event.followee_id,
        )
    )


def register(dispatcher: EventDispatcher, cache: Cache | None = None) -> None:
    dispatcher.subscribe(ContentCreated, on_content_created)
    dispatcher.subscribe(ContentUpdated, on_content_updated)
    dispatcher.subscribe(ContentDeleted, on_content_deleted)
    dispatcher.subscribe(ProfileUpdated, RenameAuthor(cache))
    dispatcher.subscribe(UserFollowed, on_user_followed)
    dispatcher.subscribe(UserUnfollowed, on_user_unfollowed)


# --- rebuild (`inkwell rebuild-read-models`) ---------------------------------------------


def _tag_list_of_each_item() -> ColumnElement[Any]:
    """PostgreSQL: an item's tag names as a JSON array, in alphabetical order."""
    names = (
        select(func.json_agg(postgresql.aggregate_order_by(tags.c.name, tags.c.name)))
        .select_from(content_tags.join(tags, tags.c.id == content_tags.c.tag_id))
        .where(content_tags.c.content_id == contents.c.id)
        .scalar_subquery()
    )
    return func.coalesce(names, literal_column("'[]'::json"))


async def _rebuild_tag_lists_on_sqlite(connection: AsyncConnection) -> None:
    """SQLite before 3.44 cannot order the values of an aggregate, so the alphabetical tag
    lists are assembled here from one ordered scan and written back in one batch."""
    pairs = await connection.execute(
        select(content_tags.c.content_id, tags.c.name)
        .join(tags, tags.c.id == content_tags.c.tag_id)
        .order_by(content_tags.c.content_id, tags.c.name)
    )
    lists: dict[Any, list[str]] = defaultdict(list)
    for content_id, name in pairs:
        lists[content_id].append(name)
    if lists:
        await connection.execute(
            update(contents_read)
            .where(contents_read.c.id == bindparam("item_id", type_=Uuid))
            .values(tags=bindparam("item_tags", type_=JSON)),
            [{"item_id": key, "item_tags": value} for key, value in lists.items()],
        )


async def rebuild(connection: AsyncConnection) -> None:
    """Refill every content read model from the write tables (the caller emptied them)."""
    on_postgres = _is_postgres(connection)
    columns = {
        "id": contents.c.id,
        "author_id": contents.c.author_id,
        "author_name": users.c.name,
        "author_display_name": users.c.display_name,
        "slug": contents.c.slug,
        "title": contents.c.title,
        "body": contents.c.body,
        "image": contents.c.image,
        "tags": _tag_list_of_each_item() if on_postgres else literal("[]"),
        "status": contents.c.status,
        "published_at": contents.c.published_at,
        "created_at": contents.c.created_at,
        "updated_at": contents.c.updated_at,
    }
    if on_postgres:
        columns["search"] = search_vector(contents.c.title, contents.c.body)
    source = select(*columns.values()).join(users, users.c.id == contents.c.author_id)
    if not on_postgres:
        # Rows numbered in the order the items were created: their full-text entries take
        # these numbers, and a search walks the entries newest first (`relevance`).
        source = source.order_by(contents.c.created_at, contents.c.id)
    await connection.execute(insert(contents_read).from_select(list(columns), source))
    if not on_postgres:
        await _rebuild_tag_lists_on_sqlite(connection)
        # One entry per item, numbered after the rows' own rowids, and the reference to it.
        await connection.execute(
            insert(contents_search).from_select(
                ["rowid", "title", "body"],
                select(literal_column("rowid"), contents_read.c.title, contents_read.c.body),
            )
        )
        await connection.execute(update(contents_read).values(search=literal_column("rowid")))
    published_tags = (
        select(tags.c.name, contents.c.id, contents.c.author_id, contents.c.created_at)
        .select_from(
            content_tags.join(tags, tags.c.id == content_tags.c.tag_id).join(
                contents, contents.c.id == content_tags.c.content_id
            )
        )
        .where(contents.c.status == "published")
    )
    await connection.execute(
        insert(content_tags_read).from_select(
            ["tag", "content_id", "author_id", "created_at"], published_tags
        )
    )
    counts = published_tags.subquery()
    await connection.execute(
        insert(tags_read).from_select(
            ["name", "count"],
            select(counts.c.name, func.count()).group_by(counts.c.name),
        )
    )
    await connection.execute(
        insert(follows_read).from_select(
            ["follower_id", "followee_id"], select(follows.c.follower_id, follows.c.followee_id)
        )
    )
