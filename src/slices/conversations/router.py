from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

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
from src.slices.conversations.exchange import SendMessage, SendMessageCommand
from src.slices.conversations.queries import ListConversations, ListMessages
from src.slices.conversations.schemas import (
    Conversation,
    ConversationCreate,
    ConversationPage,
    Exchange,
    MessageCreate,
    MessagePage,
)
from src.slices.conversations.streaming import EVENT_STREAM, open_chat_stream

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


def _problem(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    documented = problem_responses(status)
    documented[status]["description"] = description
    return documented


_STREAM_DESCRIPTION = (
    "With `Accept: text/event-stream` (and no `Idempotency-Key`): Server-Sent Events. "
    '`event: token` with `data: {"text": "…"}` for each piece of the answer as the provider '
    "writes it, then one `event: done` whose data is the exchange (the 201 body). Should the "
    "provider fail midway, `event: error` carries the `ai_unavailable` problem instead and "
    "nothing is stored. A client that leaves midway leaves its message and the partial answer "
    "stored."
)


@router.post(
    "/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=Exchange,
    responses={
        200: {
            "description": _STREAM_DESCRIPTION,
            "content": {
                EVENT_STREAM: {
                    "schema": {"type": "string"},
                    "example": 'event: token\ndata: {"text": "Hello"}\n\n'
                    'event: done\ndata: {"user_message": {…}, "assistant_message": {…}}\n\n',
                }
            },
            "headers": {
                "Cache-Control": {"description": "`no-cache`", "schema": {"type": "string"}}
            },
        },
        **problem_responses(401, 404, 422),
        **_problem(
            429,
            "Too Many Requests: `ai_quota_exceeded` (the caller's daily AI token budget is "
            "spent; `Retry-After` is the time to the next UTC midnight)",
        ),
        **_problem(
            503,
            "Service Unavailable: `ai_unavailable` (the provider timed out, could not be "
            "reached, failed or refused; nothing was stored)",
        ),
    },
)
async def send_conversation_message(
    conversation_id: uuid.UUID,
    body: MessageCreate,
    principal: CurrentPrincipal,
    res: Res,
    uow: Uow,
    request: Request,
) -> Any:
    """Send a message and get the assistant's answer.

    `content`: 1-8000 characters. The provider is given a system prompt, the conversation's
    newest messages (`AI_CONTEXT_MESSAGES`, 20 by default) and this message; the answer is
    201 with both messages, stored together (`message_count` rises by two and the
    conversation moves to the front of the list). With `Accept: text/event-stream` the answer
    streams instead (200, see below); a request with an `Idempotency-Key` is always answered
    whole, so that its retry can be replayed. 404 `conversation_not_found` for anyone else's
    conversation; 429 `ai_quota_exceeded` once the caller's daily token budget
    (`AI_DAILY_TOKEN_BUDGET`) is spent; 503 `ai_unavailable` when the provider fails — then
    nothing is stored."""
    command = SendMessageCommand(principal, conversation_id, body.content)
    context = res.settings.ai_context_messages
    if wants_stream(request):
        return await open_chat_stream(uow, res.unit_of_work, res.ai_gateway, command, context)
    return await SendMessage(uow, res.ai_gateway, context).execute(command)


def wants_stream(request: Request) -> bool:
    """Whether the answer should stream: `text/event-stream` is acceptable (q > 0) and the
    request carries no Idempotency-Key (a stream cannot be stored for a replay)."""
    if "idempotency-key" in request.headers:
        return False
    for media_range in request.headers.get("accept", "").split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        if media_type.lower() != EVENT_STREAM:
            continue
        quality = next((p[2:] for p in parameters if p.lower().startswith("q=")), "1")
        try:
            return float(quality) > 0
        except ValueError:
            return False
    return False
