from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from src.core.cache.port import CacheStatus
from src.core.db.uow import UnitOfWork
from src.core.errors.openapi import problem_responses
from src.core.identity import CurrentPrincipal
from src.core.resources import Resources, resources, unit_of_work
from src.slices.content.commands import (
    UNCHANGED,
    CreateContent,
    CreateContentCommand,
    DeleteContent,
    DeleteContentCommand,
    UpdateContent,
    UpdateContentCommand,
)
from src.slices.content.queries import GetContent, ListContent
from src.slices.content.schemas import Content, ContentCreate, ContentPage, ContentUpdate

router = APIRouter(prefix="/api/v1/content", tags=["content"])

Res = Annotated[Resources, Depends(resources)]
Uow = Annotated[UnitOfWork, Depends(unit_of_work)]
_CACHE_STATUS = {
    "Cache-Status": {
        "description": "RFC 9211: `inkwell; hit`, `inkwell; fwd=miss` or `inkwell; fwd=bypass`",
        "schema": {"type": "string"},
    }
}


def _cached_json(body: bytes, cache_status: CacheStatus) -> Response:
    value = "inkwell; hit" if cache_status == "hit" else f"inkwell; fwd={cache_status}"
    return Response(body, media_type="application/json", headers={"Cache-Status": value})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Content,
    responses={
        201: {
            "headers": {
                "Location": {"description": "The new content", "schema": {"type": "string"}}
            }
        },
        **problem_responses(401, 403, 422),
    },
)
async def create_content(
    body: ContentCreate, principal: CurrentPrincipal, res: Res, uow: Uow, response: Response
) -> Content:
    command = CreateContentCommand(principal, body.title, body.content, body.image)
    item = await CreateContent(uow, res.cache).execute(command)
    response.headers["Location"] = f"/api/v1/content/{item.id}"
    return Content.of(item)


@router.get(
    "",
    response_model=ContentPage,
    responses={200: {"headers": _CACHE_STATUS}, **problem_responses(422)},
)
async def list_content(
    res: Res,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    author_id: uuid.UUID | None = None,
) -> Response:
    query = ListContent(
        res.database.read, res.cache, res.cursors, res.settings.content_cache_ttl_seconds
    )
    return _cached_json(*await query.execute(limit, cursor, author_id))


@router.get(
    "/{content_id}",
    response_model=Content,
    responses={200: {"headers": _CACHE_STATUS}, **problem_responses(404, 422)},
)
async def get_content(content_id: uuid.UUID, res: Res) -> Response:
    query = GetContent(res.database.read, res.cache, res.settings.content_cache_ttl_seconds)
    return _cached_json(*await query.execute(content_id))


@router.patch(
    "/{content_id}", response_model=Content, responses=problem_responses(401, 403, 404, 422)
)
async def update_content(
    content_id: uuid.UUID, body: ContentUpdate, principal: CurrentPrincipal, res: Res, uow: Uow
) -> Content:
    given = body.model_fields_set
    command = UpdateContentCommand(
        principal,
        content_id,
        title=body.title,
        body=body.content,
        image=body.image if "image" in given else UNCHANGED,
    )
    return Content.of(await UpdateContent(uow, res.cache).execute(command))


@router.delete(
    "/{content_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_content(
    content_id: uuid.UUID, principal: CurrentPrincipal, res: Res, uow: Uow
) -> Response:
    await DeleteContent(uow, res.cache).execute(DeleteContentCommand(principal, content_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
