"""Events the content slice publishes; the users slice counts content with them."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from src.core.events import DomainEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentState:
    """An item as readers see it (its author's names copied in): a `contents_read` row."""

    id: uuid.UUID
    author_id: uuid.UUID
    author_name: str
    author_display_name: str
    title: str
    body: str
    image: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentCreated(DomainEvent):
    item: ContentState


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentUpdated(DomainEvent):
    item: ContentState


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentDeleted(DomainEvent):
    content_id: uuid.UUID
    author_id: uuid.UUID
