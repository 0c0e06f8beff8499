"""Events the content slice publishes; the users slice counts published content with them.

Projections follow an item's state from one event to the next: `ContentCreated` (no state
before), `ContentUpdated` (the state before and after), `ContentDeleted` (no state after).
Whether an item counts publicly (lists, search, tag counts, `content_count`) is whether that
state is published, so every projector derives its change from the pair.

`ContentPublished` says that an item has just become visible to everyone — created as
published, or a draft published — for whatever reacts to publication (feeds, notifications).
It is emitted after the `ContentCreated` / `ContentUpdated` of the same change.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from src.core.events import DomainEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentState:
    """An item as readers see it (its author's names copied in): a `contents_read` row.

    `published_at` is when the item was first published (None until then); it is kept
    through a later unpublish, and the answer shows it only while the item is published.
    """

    id: uuid.UUID
    author_id: uuid.UUID
    author_name: str
    author_display_name: str
    slug: str
    title: str
    body: str
    image: str | None
    tags: tuple[str, ...]
    status: str
    published_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def is_published(self) -> bool:
        return self.status == "published"


def public_tags(item: ContentState | None) -> frozenset[str]:
    """The tags an item contributes to the public tag counts (none while a draft)."""
    return frozenset(item.tags) if item is not None and item.is_published else frozenset()


def published_change(before: ContentState | None, after: ContentState | None) -> int:
    """+1 when a change makes an item public, -1 when it stops being public, else 0."""
    was = before is not None and before.is_published
    now = after is not None and after.is_published
    return int(now) - int(was)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentCreated(DomainEvent):
    item: ContentState


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentUpdated(DomainEvent):
    item: ContentState
    previous: ContentState


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentDeleted(DomainEvent):
    item: ContentState  # the state it had when it was deleted


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentPublished(DomainEvent):
    """The item became visible to everyone (created as published, or a draft published)."""

    item: ContentState
