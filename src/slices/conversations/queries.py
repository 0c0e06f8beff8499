"""Conversation queries: the caller's conversations, and one conversation's messages.

Conversations are private and read back in the shape they are written (no other slice's data
is copied into them, no aggregate to precompute), so `conversations` and `messages` are their
own read model: these queries read them through the read handle (the replica in production),
never the write engine, and each is one range of an index:

* the caller's conversations, most recently active first: `(owner_id, updated_at, id)` read
  backwards; the cursor is the last item's `(updated_at, id)`;
* a conversation's messages, oldest first: `(conversation_id, position)`; the cursor is the
  last message's position. An exchange writes its two messages with the next two positions,
  so a page boundary never splits or repeats anything, however the messages' timestamps fall.

Someone else's conversation, like an unknown one, is 404 `conversation_not_found`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from sqlalchemy import select

from src.core.db.read import ReadHandle
from src.core.identity import Principal
from src.core.pagination import CursorCodec, Keyset, PositionShape, split_page
from src.core.tables import conversations, messages
from src.slices.conversations.errors import ConversationNotFound
from src.slices.conversations.rules import shown_title
from src.slices.conversations.schemas import Conversation, ConversationPage, Message, MessagePage

tracer = trace.get_tracer(__name__)

_MOST_RECENTLY_ACTIVE = Keyset(conversations.c.updated_at, conversations.c.id)
_CONVERSATION_COLUMNS = (
    conversations.c.id,
    conversations.c.title,
    conversations.c.message_count,
    conversations.c.created_at,
    conversations.c.updated_at,
)
_MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.position,
    messages.c.role,
    messages.c.content,
    messages.c.created_at,
)
_BY_POSITION: PositionShape = (int,)


def conversation_of(row: Any) -> Conversation:
    return Conversation(
        id=row.id,
        title=shown_title(row.title),
        message_count=row.message_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True, slots=True)
class ListConversations:
    read: ReadHandle
    cursors: CursorCodec

    async def execute(self, actor: Principal, limit: int, cursor: str | None) -> ConversationPage:
        with tracer.start_as_current_span("conversations.list") as span:
            span.set_attribute("page.limit", limit)
            after = self.cursors.decode(cursor) if cursor else None
            query = select(*_CONVERSATION_COLUMNS).where(conversations.c.owner_id == actor.user_id)
            rows = await self.read.all(_MOST_RECENTLY_ACTIVE.page(query, after, limit))
            page, next_cursor = split_page(
                rows, limit, self.cursors, lambda row: (row.updated_at, row.id)
            )
            return ConversationPage(
                items=[conversation_of(row) for row in page], next_cursor=next_cursor
            )


@dataclass(frozen=True, slots=True)
class ListMessages:
    read: ReadHandle
    cursors: CursorCodec

    async def execute(
        self, actor: Principal, conversation_id: uuid.UUID, limit: int, cursor: str | None
    ) -> MessagePage:
        with tracer.start_as_current_span("conversations.list_messages") as span:
            span.set_attribute("conversation.id", str(conversation_id))
            span.set_attribute("page.limit", limit)
            after = self.cursors.decode(cursor, _BY_POSITION)[0] if cursor else 0
            owned = await self.read.scalar(
                select(conversations.c.id).where(
                    conversations.c.id == conversation_id,
                    conversations.c.owner_id == actor.user_id,
                )
            )
            if owned is None:
                raise ConversationNotFound()
            rows = await self.read.all(
                select(*_MESSAGE_COLUMNS)
                .where(messages.c.conversation_id == conversation_id, messages.c.position > after)
                .order_by(messages.c.position)
                .limit(limit + 1)
            )
            page, next_cursor = split_page(rows, limit, self.cursors, lambda row: (row.position,))
            return MessagePage(
                items=[Message.model_validate(row) for row in page], next_cursor=next_cursor
            )
