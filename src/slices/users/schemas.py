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


class UserPage(BaseModel):
    items: list[UserPublic]
    next_cursor: str | None
