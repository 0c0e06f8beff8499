from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field


class Actor(BaseModel):
    """Who caused the notification, named as they were when it was made."""

    id: uuid.UUID
    name: str
    display_name: str


class NotifiedContent(BaseModel):
    """The item a notification is about, as it was published."""

    id: uuid.UUID
    title: str
    slug: str


class ContentPublishedNotification(BaseModel):
    """Someone the recipient follows published an item."""

    id: uuid.UUID
    type: Literal["content_published"]
    actor: Actor
    content: NotifiedContent
    created_at: dt.datetime
    read_at: dt.datetime | None


class NewFollowerNotification(BaseModel):
    """Someone followed the recipient."""

    id: uuid.UUID
    type: Literal["new_follower"]
    actor: Actor
    created_at: dt.datetime
    read_at: dt.datetime | None


Notification = Annotated[
    ContentPublishedNotification | NewFollowerNotification, Field(discriminator="type")
]


class NotificationPage(BaseModel):
    items: list[Notification]
    next_cursor: str | None
    unread_count: int = Field(description="How many of the caller's notifications are unread.")
