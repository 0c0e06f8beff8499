from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from src.core.validation import EmptyIsNull, MinVisible, MultiLine, SingleLine
from src.slices.conversations.rules import DEFAULT_TITLE, MAX_MESSAGE_LENGTH, MAX_TITLE_LENGTH

ConversationTitle = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_TITLE_LENGTH),
    SingleLine,
    EmptyIsNull,
]
MessageText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_MESSAGE_LENGTH),
    MultiLine,
    MinVisible(1),
]


class ConversationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"title": "Drafting my next essay"}]}
    )

    title: ConversationTitle | None = Field(
        default=None,
        description=f"At most {MAX_TITLE_LENGTH} characters on one line. Without one the "
        f'conversation is "{DEFAULT_TITLE}" until its first message names it.',
    )


class Conversation(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    message_count: int
    created_at: dt.datetime
    updated_at: dt.datetime = Field(description="The conversation's last activity.")


class ConversationPage(BaseModel):
    items: list[Conversation]
    next_cursor: str | None


class Message(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    role: Literal["user", "assistant"]
    content: str
    created_at: dt.datetime


class MessagePage(BaseModel):
    items: list[Message]
    next_cursor: str | None


class MessageCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"content": "Suggest three titles for a post on tea."}]},
    )

    content: MessageText = Field(description=f"1-{MAX_MESSAGE_LENGTH} characters.")


class Exchange(BaseModel):
    """One exchange: the caller's message and the assistant's answer, both stored."""

    user_message: Message
    assistant_message: Message
