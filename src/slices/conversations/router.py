from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from src.core.db.read import ReadHandle
from src.core.db.uow import UnitOfWork
from src.core.errors.openapi import problem_responses
from src.core.identity import CurrentPrincipal
from src.core.resources import Resources, read_side, resources, unit_of_work
from src.slices.conversations.commands import (
    CreateConversation,
    CreateConversationCommand,
    DeleteConversation,
    DeleteConversationCommand,
)
from src.slices.conversations.queries import ListConversations, ListMessages
from src.slices.conversations.schemas import (
    Conversation,
    ConversationCreate,
    ConversationPage,
    MessagePage,
)

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])

Res = Annotated[Resources, Depends(resources)]
Uow = Annotated[UnitOfWork, Depends(unit_of_work)]
Read = Annotated[ReadHandle, Depends(read_side)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Conversation,
    responses={
        201: {
            "headers": {
                "Location": {
                    "description": "The new conversation (its messages are under `/messages`)",
                    "schema": {"type": "string"},
                }
            }
        },
        **problem_responses(401, 422),
    },
)
async def create_conversation(
    principal: CurrentPrincipal,
    uow: Uow,
    response: Response,
    body: ConversationCreate | None = None,
) -> Conversation:
    """Start a conversation with the AI assistant.

    An optional `title` (at most 200 characters on one line); without one the conversation is
    "New conversation" until its first message names it (that message's first line, cut to
    80 characters). The body may be omitted. Only its owner ever sees it. `Location` is the
    conversation (`DELETE` it; its messages are at `Location` + `/messages`)."""
    title = body.title if body is not None else None
    conversation = await CreateConversation(uow).execute(
        CreateConversationCommand(principal, title)
    )
    response.headers["Location"] = f"/api/v1/conversations/{conversation.id}"
    return conversation


@router.get("", response_model=ConversationPage, responses=problem_responses(401, 422))
async def list_conversations(
    principal: CurrentPrincipal, res: Res, read: Read, limit: Limit = 20, cursor: Cursor = None
) -> ConversationPage:
    """List the caller's conversations, most recently active first.

    Each exchange moves its conversation to the front. Paged with `limit` (1-100) and
    `cursor`."""
    return await ListConversations(read, res.cursors).execute(principal, limit, cursor)


@router.get(
    "/{conversation_id}/messages",
    response_model=MessagePage,
    responses=problem_responses(401, 404, 422),
)
async def list_conversation_messages(
    conversation_id: uuid.UUID,
    principal: CurrentPrincipal,
    res: Res,
    read: Read,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> MessagePage:
    """List a conversation's messages, oldest first.

    The caller's own conversation only: anyone else's, like an unknown id, is 404
    `conversation_not_found`. Paged with `limit` (1-100) and `cursor`; a page's cursor stays
    valid as the conversation grows (later pages bring the newer messages)."""
    return await ListMessages(read, res.cursors).execute(principal, conversation_id, limit, cursor)


@router.delete(
    "/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 404, 422),
)
async def delete_conversation(
    conversation_id: uuid.UUID, principal: CurrentPrincipal, uow: Uow
) -> Response:
    """Delete a conversation and all its messages.

    The caller's own only: anyone else's, like an unknown id, is 404
    `conversation_not_found`."""
    await DeleteConversation(uow).execute(DeleteConversationCommand(principal, conversation_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
