from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from src.core.db.uow import UnitOfWork
from src.core.errors.openapi import problem_responses
from src.core.errors.problems import PROBLEM_CONTENT_TYPE
from src.core.identity import CurrentPrincipal
from src.core.resources import Resources, resources, unit_of_work
from src.slices.ai.commands import CreateAIDraft, CreateAIDraftCommand
from src.slices.ai.schemas import AIDraftCreate

router = APIRouter(prefix="/api/v1/ai", tags=["ai"])

Res = Annotated[Resources, Depends(resources)]
Uow = Annotated[UnitOfWork, Depends(unit_of_work)]

_PROBLEM = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_RETRY_AFTER = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The new draft (a `Content` in `draft` status, authored by the caller)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Content"}}},
        "headers": {"Location": {"description": "The new draft", "schema": {"type": "string"}}},
    },
    **problem_responses(401, 403, 422),
    429: {
        "description": "Too Many Requests: `ai_quota_exceeded` (the caller's daily token "
        "budget is spent; `Retry-After` is the seconds to the next UTC midnight)",
        "content": _PROBLEM,
        "headers": _RETRY_AFTER,
    },
    503: {
        "description": "Service Unavailable: `ai_unavailable` (the provider timed out, could "
        "not be reached, failed or refused; nothing was stored)",
        "content": _PROBLEM,
        "headers": _RETRY_AFTER,
    },
}


@router.post(
    "/drafts",
    status_code=status.HTTP_201_CREATED,
    response_class=Response,
    responses=_RESPONSES,
)
async def create_ai_draft(
    body: AIDraftCreate, principal: CurrentPrincipal, res: Res, uow: Uow
) -> Response:
    """Write a draft with the AI provider (creators and admins).

    The provider gets a system prompt and the caller's `prompt` (3-2000 characters) and writes
    the title and body; the draft is created as `POST /api/v1/content` creates one (slug,
    `tags`, events), in `draft` status, authored by the caller, and answered with `Location`.
    Its tokens count against the caller's daily budget (429 `ai_quota_exceeded` once spent);
    a provider that times out, cannot be reached, fails or refuses is 503 `ai_unavailable`
    with `Retry-After`, and nothing is stored. With an `Idempotency-Key`, a retry replays the
    draft without calling the provider again. A viewer is 403 `forbidden`."""
    command = CreateAIDraftCommand(principal, body.prompt, tags=body.tags)
    created = await CreateAIDraft(uow, res.ai_gateway, res.draft_writer).execute(command)
    return Response(
        created.document,
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"Location": f"/api/v1/content/{created.id}"},
    )
