from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from src.core.validation import MinVisible, MultiLine, SingleLine, WebUrl
from src.slices.content.events import ContentState
from src.slices.content.rules import MAX_TAGS, SLUG_MAX_LENGTH, SLUG_PATTERN, normalize_tag

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200), SingleLine
]
Body = Annotated[
    str, StringConstraints(min_length=10, max_length=50_000), MultiLine, MinVisible(10)
]
ImageUrl = WebUrl
# A tag as sent; trimmed, lower-cased and its inner whitespace (tabs and newlines too) made
# '-' before it is checked: what is left may only be letters, digits and '-', so no control
# character can reach the database.
Tag = Annotated[str, StringConstraints(max_length=100), AfterValidator(normalize_tag)]
Tags = Annotated[
    list[Tag],
    Field(
        max_length=MAX_TAGS,
        description="At most 10; each is trimmed, lower-cased and its inner whitespace "
        "becomes '-', then must be 1-30 letters, digits or '-'. Duplicates are merged and "
        "the tags are stored in alphabetical order.",
    ),
    AfterValidator(lambda tags: sorted(set(tags))),
]
StatusField = Annotated[
    Literal["draft", "published"],
    Field(description="A draft is visible only to its author and admins."),
]
Slug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SLUG_MAX_LENGTH, pattern=SLUG_PATTERN),
]


class ContentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Notes on the Analytical Engine",
                    "content": "It might act upon other things besides number.",
                    "image": "https://example.com/engine.png",
                    "tags": ["history", "Computing"],
                    "status": "draft",
                }
            ]
        },
    )

    title: Title
    content: Body
    image: ImageUrl | None = None
    tags: Tags = []
    status: StatusField = "published"


class ContentUpdate(BaseModel):
    """Any of the fields; `image: null` removes the image, `tags: []` every tag;
    `status: "draft"` unpublishes a published item."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"title": "Notes, revised"},
                {"image": None},
                {"tags": ["history"], "status": "published"},
            ]
        },
    )

    title: Title | None = None
    content: Body | None = None
    image: ImageUrl | None = None
    tags: Tags | None = None
    status: StatusField | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ContentUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of title, content, image, tags, status")
        for name in ("title", "content", "tags", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class Author(BaseModel):
    id: uuid.UUID
    name: str
    display_name: str


class Content(BaseModel):
    id: uuid.UUID
    slug: str = Field(description="From the title at creation; never changes afterwards.")
    title: str
    content: str
    image: str | None
    tags: list[str] = Field(description="Alphabetical.")
    status: Literal["draft", "published"]
    published_at: dt.datetime | None = Field(
        description="When the item was first published; null while it is a draft."
    )
    author: Author
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, item: ContentState) -> Content:
        """The one place an item's answer is assembled (commands and queries alike)."""
        return cls(
            id=item.id,
            slug=item.slug,
            title=item.title,
            content=item.body,
            image=item.image,
            tags=list(item.tags),
            status="published" if item.is_published else "draft",
            published_at=item.published_at if item.is_published else None,
            author=Author(
                id=item.author_id, name=item.author_name, display_name=item.author_display_name
            ),
            created_at=item.created_at,
            updated_at=item.updated_at,
        )


class ContentPage(BaseModel):
    items: list[Content]
    next_cursor: str | None


class TagCount(BaseModel):
    name: str
    count: int = Field(description="Published items carrying the tag.")


class TagList(BaseModel):
    items: list[TagCount]
