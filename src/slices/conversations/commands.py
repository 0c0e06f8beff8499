"""Conversation commands: `CreateConversation`, `DeleteConversation` (and, in `exchange.py`,
posting a message).

A conversation belongs to its owner alone: every command finds it by id *and* owner, so
someone else's conversation is a 404 `conversation_not_found`, exactly like an unknown id —
ids cannot be probed. Use cases never commit; the boundary that opened the unit of work does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from opentelemetry import trace
from sqlalchemy import delete, insert
from sqlalchemy.engine import CursorResult

from src.core.db.uow import UnitOfWork
from src.core.identity import Principal
from src.core.tables import conversations, messages, utcnow
from src.slices.conversations.errors import ConversationNotFound
from src.slices.conversations.rules import shown_title
from src.slices.conversations.schemas import Conversation

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class CreateConversationCommand:
    actor: Principal
    title: str | None = None  # None: untitled until its first message names it


@dataclass(frozen=True, slots=True)
class DeleteConversationCommand:
    actor: Principal
    conversation_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CreateConversation:
    uow: UnitOfWork

    async def execute(self, command: CreateConversationCommand) -> Conversation:
        with tracer.start_as_current_span("conversations.create"):
            now = utcnow()
            conversation_id = uuid.uuid4()
            await self.uow.execute(
                insert(conversations).values(
                    id=conversation_id,
                    owner_id=command.actor.user_id,
                    title=command.title,
                    message_count=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            return Conversation(
                id=conversation_id,
                title=shown_title(command.title),
                message_count=0,
                created_at=now,
                updated_at=now,
            )


@dataclass(frozen=True, slots=True)
class DeleteConversation:
    uow: UnitOfWork

    async def execute(self, command: DeleteConversationCommand) -> None:
        """Delete the conversation and its messages (its owner's only)."""
        with tracer.start_as_current_span("conversations.delete") as span:
            span.set_attribute("conversation.id", str(command.conversation_id))
            deleted = await self.uow.execute(
                delete(conversations).where(
                    conversations.c.id == command.conversation_id,
                    conversations.c.owner_id == command.actor.user_id,
                )
            )
            if cast(CursorResult[Any], deleted).rowcount != 1:
                raise ConversationNotFound()
            # The foreign key cascades too; deleting explicitly does not depend on it being
            # enforced (SQLite enforces it only per connection, with a pragma).
            await self.uow.execute(
                delete(messages).where(messages.c.conversation_id == command.conversation_id)
            )
