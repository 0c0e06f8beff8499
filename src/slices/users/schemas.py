from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict


class UserPublic(BaseModel):
    """What anyone may see of a user: never the e-mail address or phone number."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    display_name: str
    country: str | None
    state: str | None
    content_count: int
    created_at: dt.datetime


class ContentSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    title: str
    created_at: dt.datetime


class UserProfile(UserPublic):
    """A user's public profile with their newest content."""

    contents: list[ContentSummary]


class PrivateProfile(BaseModel):
    """The caller's own profile: the signup answer plus `content_count`."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str
    display_name: str
    phone_number: str | None
    country: str | None
    state: str | None
    role: str
    created_at: dt.datetime
    content_count: int


class UserPage(BaseModel):
    items: list[UserPublic]
    next_cursor: str | None
