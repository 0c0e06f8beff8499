from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from src.core.validation import MinVisible, MultiLine, SingleLine, WebUrl
from src.slices.content.events import ContentState

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200), SingleLine
]
Body = Annotated[
    str, StringConstraints(min_length=10, max_length=50_000), MultiLine, MinVisible(10)
]
ImageUrl = WebUrl


class ContentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Notes on the Analytical Engine",
                    "content": "It might act upon other things besides number.",
                    "image": "https://example.com/engine.png",
                }
            ]
        },
    )

    title: Title
    content: Body
    image: ImageUrl | None = None


class ContentUpdate(BaseModel):
    """Any of the fields; `image: null` removes the image."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"title": "Notes, revised"}, {"image": None}]},
    )

    title: Title | None = None
    content: Body | None = None
    image: ImageUrl | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ContentUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of title, content, image")
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("title cannot be null")
        if "content" in self.model_fields_set and self.content is None:
            raise ValueError("content cannot be null")
        return self


class Author(BaseModel):
    id: uuid.UUID
    name: str
    display_name: str


class Content(BaseModel):
    id: uuid.UUID
    title: str
    content: str
    image: str | None
    author: Author
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, item: ContentState) -> Content:
        """The one place an item's answer is assembled (commands and queries alike)."""
        return cls(
            id=item.id,
            title=item.title,
            content=item.body,
            image=item.image,
            author=Author(
                id=item.author_id, name=item.author_name, display_name=item.author_display_name
            ),
            created_at=item.created_at,
            updated_at=item.updated_at,
        )


class ContentPage(BaseModel):
    items: list[Content]
    next_cursor: str | None
