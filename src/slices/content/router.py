from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status

from src.core.cache.port import CacheStatus
from src.core.db.uow import UnitOfWork
from src.core.errors.openapi import problem_responses
from src.core.identity import CurrentPrincipal, OptionalPrincipal
from src.core.resources import Resources, resources, unit_of_work
from src.core.validation import SingleLine
from src.slices.content.commands import (
    UNCHANGED,
    CreateContent,
    CreateContentCommand,
    DeleteContent,
    DeleteContentCommand,
    UpdateContent,
    UpdateContentCommand,
)
from src.slices.content.queries import (
    ContentFilters,
    GetContent,
    GetContentBySlug,
    ListContent,
    ListFeed,
    ListOwnContent,
    ListTags,
)
from src.slices.content.rules import SEARCH_MAX_LENGTH, search_terms
from src.slices.content.schemas import (
    Content,
    ContentCreate,
    ContentPage,
    ContentUpdate,
    Slug,
    Tag,
    TagList,
)

router = APIRouter(prefix="/api/v1/content", tags=["content"])
# Publishing reads that live beside other slices' paths.
own_content_router = APIRouter(prefix="/api/v1/users/me", tags=["content"])
tags_router = APIRouter(prefix="/api/v1/tags", tags=["content"])

Res = Annotated[Resources, Depends(resources)]
Uow = Annotated[UnitOfWork, Depends(unit_of_work)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512)]
# Reads anyone may make, where a token shows more (the caller's drafts): authentication is
# optional, which OpenAPI says with an empty alternative beside the bearer scheme.
_OPTIONAL_AUTH: dict[str, Any] = {"security": [{}]}
_CACHE_STATUS = {
    "Cache-Status": {
        "description": "RFC 9211: `inkwell; hit`, `inkwell; fwd=miss` or `inkwell; fwd=bypass` "
        "(a draft, answered to its author or an admin, is never cached)",
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
    """Publish content as the caller.

    A title of 3-200 characters, a body of 10-50,000, an optional http(s) image URL, up to 10
    tags and a `status`: `published` (the default) or `draft`. The slug comes from the title
    (`-2`, `-3`, … when taken) and never changes. The answer carries `Location`; the next
    read sees the new item at once."""
    command = CreateContentCommand(
        principal, body.title, body.content, body.image, tags=body.tags, status=body.status
    )
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
    limit: Limit = 20,
    cursor: Cursor = None,
    author_id: uuid.UUID | None = None,
    tag: Annotated[
        Tag | None, Query(description="One tag (normalized like the tags of an item).")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=SEARCH_MAX_LENGTH,
            description="Full-text search of title and body: every word must match. "
            "Ordered by relevance, then newest.",
        ),
        SingleLine,
    ] = None,
) -> Response:
    """List published content, newest first.

    Narrowed by `author_id`, `tag` and `q` (full-text search of title and body, ordered by
    relevance, then newest), which combine; paged with `limit` (1-100) and `cursor`. Served
    through the cache (`Cache-Status`)."""
    filters = ContentFilters(
        author_id=author_id, tag=tag, search=None if q is None else search_terms(q)
    )
    query = ListContent(
        res.database.read,
        res.cache,
        res.cursors,
        res.settings.content_cache_ttl_seconds,
        res.settings.search_rank_window,
    )
    return _cached_json(*await query.execute(limit, cursor, filters))


@router.get("/feed", response_model=ContentPage, responses=problem_responses(401, 422))
async def get_feed(
    principal: CurrentPrincipal, res: Res, limit: Limit = 20, cursor: Cursor = None
) -> Response:
    """List the published content of the authors the caller follows, most recently published
    first.

    The items of the content list, ordered by `published_at` (then id); paged with `limit`
    (1-100) and `cursor`. A follow or an unfollow shows on the very next page; drafts never
    appear. Not cached (it is the caller's alone)."""
    feed = ListFeed(res.database.read, res.cursors, res.settings.feed_walk)
    body = await feed.execute(principal, limit, cursor)
    return Response(body, media_type="application/json")


@router.get(
    "/slug/{slug}",
    response_model=Content,
    responses={200: {"headers": _CACHE_STATUS}, **problem_responses(401, 404, 422)},
    openapi_extra=_OPTIONAL_AUTH,
)
async def get_content_by_slug(
    slug: Annotated[Slug, Path()], viewer: OptionalPrincipal, res: Res
) -> Response:
    """Get one content item by its slug.

    Answers exactly as by its id."""
    query = GetContentBySlug(res.database.read, res.cache, res.settings.content_cache_ttl_seconds)
    return _cached_json(*await query.execute(slug, viewer))


@router.get(
    "/{content_id}",
    response_model=Content,
    responses={200: {"headers": _CACHE_STATUS}, **problem_responses(401, 404, 422)},
    openapi_extra=_OPTIONAL_AUTH,
)
async def get_content(content_id: uuid.UUID, viewer: OptionalPrincipal, res: Res) -> Response:
    """Get one content item.

    Served through the cache (`Cache-Status`); 404 `content_not_found`. A draft is answered
    only to its author and admins, with their token and never from the cache (`Cache-Status:
    inkwell; fwd=bypass`); to anyone else it is 404 too. A token that is sent must be valid
    (401 otherwise)."""
    query = GetContent(res.database.read, res.cache, res.settings.content_cache_ttl_seconds)
    return _cached_json(*await query.execute(content_id, viewer))


@router.patch(
    "/{content_id}", response_model=Content, responses=problem_responses(401, 403, 404, 422)
)
async def update_content(
    content_id: uuid.UUID, body: ContentUpdate, principal: CurrentPrincipal, res: Res, uow: Uow
) -> Content:
    """Edit content (its author or an admin).

    Any of `title`, `content`, `image` (`null` clears it), `tags` (`[]` clears them) and
    `status` (`draft` unpublishes; publishing a draft sets `published_at` the first time).
    403 `forbidden` for anyone else, 404 for someone else's draft. Every later read sees the
    edit."""
    given = body.model_fields_set
    command = UpdateContentCommand(
        principal,
        content_id,
        title=body.title,
        body=body.content,
        image=body.image if "image" in given else UNCHANGED,
        tags=body.tags,
        status=body.status,
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
    """Delete content (its author or an admin).

    Afterwards a read answers 404 at once and, if it was published, the author's
    `content_count` drops; 403 `forbidden` for anyone else, 404 for someone else's draft."""
    await DeleteContent(uow, res.cache).execute(DeleteContentCommand(principal, content_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@own_content_router.get(
    "/content",
    response_model=ContentPage,
    responses={200: {"headers": _CACHE_STATUS}, **problem_responses(401, 422)},
)
async def list_my_content(
    principal: CurrentPrincipal,
    res: Res,
    item_status: Annotated[Literal["draft", "published"] | None, Query(alias="status")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Response:
    """List the caller's own content, drafts included.

    Newest first; `status` narrows it to drafts or to published items; paged with `limit`
    (1-100) and `cursor`. Cached for the caller alone."""
    query = ListOwnContent(
        res.database.read, res.cache, res.cursors, res.settings.content_cache_ttl_seconds
    )
    return _cached_json(*await query.execute(principal, item_status, limit, cursor))


@tags_router.get(
    "",
    response_model=TagList,
    responses={200: {"headers": _CACHE_STATUS}, **problem_responses(422)},
)
async def list_tags(res: Res, limit: Limit = 20) -> Response:
    """List the tags of published content.

    Each with how many published items carry it, most used first, then by name; at most
    `limit` (1-100)."""
    query = ListTags(res.database.read, res.cache, res.settings.content_cache_ttl_seconds)
    return _cached_json(*await query.execute(limit))
