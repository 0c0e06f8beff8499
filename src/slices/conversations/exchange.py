"""Posting a message: one exchange with the AI assistant, in three steps.

1. `prepare` — the conversation must be the caller's (else 404 `conversation_not_found`); its
   newest `AI_CONTEXT_MESSAGES` messages are read, oldest first, and the provider's prompt is
   the chat system prompt, that history and the new message. It reads the primary on an
   autocommit connection that goes back to the pool at once (`uow.reader()`): the unit of
   work takes no connection, so nothing is held, and nothing is locked, while the provider
   works.
2. The provider call, through the AI gateway (`src/core/ai/gateway.py`): admission against the
   caller's daily token budget (429 `ai_quota_exceeded`), then the completion, whole or
   streamed (any provider failure is 503 `ai_unavailable`). A failed call stores nothing.
3. `record` — in the unit of work it is given: the call's tokens are charged (first: the
   gateway's rule), the conversation's `message_count` rises by two and `updated_at` moves to
   now in one UPDATE that also hands out the two new positions (so concurrent exchanges can
   never share one), an untitled conversation takes its title from its first message, and
   the caller's message and the answer are inserted. The conversation may have been deleted
   while the provider worked: then it is 404 and nothing is written (looked up again before
   the first write, so the call's lease is given back at once; only a delete in the instant
   between that look-up and the UPDATE leaves the lease to expire on its own).

`SendMessage` is the JSON path (all three in the request's unit of work, committed by the
command boundary). The streaming path (`streaming.py`, wired in the router) runs the same
`prepare` and `record`, the latter in a unit of work of its own at the stream's end.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from src.core.ai.gateway import AICall, AIGateway
from src.core.ai.port import ChatMessage
from src.core.ai.prompts import CHAT_SYSTEM_PROMPT
from src.core.db.uow import UnitOfWork
from src.core.identity import Principal
from src.core.tables import conversations, messages, utcnow
from src.slices.conversations.errors import ConversationNotFound
from src.slices.conversations.rules import title_from
from src.slices.conversations.schemas import Exchange, Message

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class SendMessageCommand:
    actor: Principal
    conversation_id: uuid.UUID
    content: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the provider is given for one exchange, and when the caller's message came."""

    command: SendMessageCommand
    messages: tuple[ChatMessage, ...]
    received_at: dt.datetime


async def _owned(connection: AsyncConnection, command: SendMessageCommand) -> bool:
    found = await connection.execute(
        select(conversations.c.id).where(
            conversations.c.id == command.conversation_id,
            conversations.c.owner_id == command.actor.user_id,
        )
    )
    return found.first() is not None


async def prepare(uow: UnitOfWork, command: SendMessageCommand, context_messages: int) -> Prompt:
    """The prompt of an exchange in the caller's own conversation (404 for anyone else's)."""
    received_at = utcnow()
    with tracer.start_as_current_span("conversations.prepare_exchange") as span:
        span.set_attribute("conversation.id", str(command.conversation_id))
        async with uow.reader() as connection:
            if not await _owned(connection, command):
                raise ConversationNotFound()
            newest = (
                await connection.execute(
                    select(messages.c.role, messages.c.content)
                    .where(messages.c.conversation_id == command.conversation_id)
                    .order_by(messages.c.position.desc())
                    .limit(context_messages)
                )
            ).all()
        span.set_attribute("conversation.context_messages", len(newest))
    history = [ChatMessage(row.role, row.content) for row in reversed(newest)]
    prompt = (
        ChatMessage("system", CHAT_SYSTEM_PROMPT),
        *history,
        ChatMessage("user", command.content),
    )
    return Prompt(command, prompt, received_at)


async def record(uow: UnitOfWork, prompt: Prompt, answer: str, call: AICall) -> Exchange:
    """Charge the call and store the exchange, in `uow` (which its boundary commits)."""
    command = prompt.command
    with tracer.start_as_current_span("conversations.record_exchange") as span:
        span.set_attribute("conversation.id", str(command.conversation_id))
        # Deleted while the provider answered? Found out before the first write, so the
        # gateway gives the call's lease back at once (a unit that has written holds SQLite's
        # write lock, which that release would wait for).
        async with uow.reader() as connection:
            if not await _owned(connection, command):
                raise ConversationNotFound()
        await call.charge(uow)
        now = max(utcnow(), prompt.received_at)
        count: Any = (
            await uow.execute(
                update(conversations)
                .where(
                    conversations.c.id == command.conversation_id,
                    conversations.c.owner_id == command.actor.user_id,
                )
                .values(
                    message_count=conversations.c.message_count + 2,
                    updated_at=now,
                    title=func.coalesce(conversations.c.title, title_from(command.content)),
                )
                .returning(conversations.c.message_count)
            )
        ).scalar()
        if count is None:  # deleted while the provider was answering
            raise ConversationNotFound()
        asked = Message(
            id=uuid.uuid4(), role="user", content=command.content, created_at=prompt.received_at
        )
        answered = Message(id=uuid.uuid4(), role="assistant", content=answer, created_at=now)
        await uow.execute(
            insert(messages),
            [
                {
                    "id": message.id,
                    "conversation_id": command.conversation_id,
                    "position": position,
                    "role": message.role,
                    "content": message.content,
                    "created_at": message.created_at,
                }
                for position, message in ((count - 1, asked), (count, answered))
            ],
        )
        return Exchange(user_message=asked, assistant_message=answered)


@dataclass(frozen=True, slots=True)
class SendMessage:
    """The whole exchange, answered at once (the JSON path)."""

    uow: UnitOfWork
    ai: AIGateway
    context_messages: int

    async def execute(self, command: SendMessageCommand) -> Exchange:
        prompt = await prepare(self.uow, command, self.context_messages)
        async with self.ai.call(command.actor.user_id, "chat") as call:
            completion = await call.complete(prompt.messages)
            return await record(self.uow, prompt, completion.text, call)
