from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from src.core.db.read import ReadHandle
from src.core.errors.openapi import problem_responses
from src.core.identity import CurrentPrincipal
from src.core.resources import Resources, read_side, resources
from src.slices.users.queries import GetMyProfile, GetUser, ListUsers
from src.slices.users.schemas import PrivateProfile, UserPage, UserProfile

router = APIRouter(prefix="/api/v1/users", tags=["users"])

Res = Annotated[Resources, Depends(resources)]
Read = Annotated[ReadHandle, Depends(read_side)]


@router.get("", response_model=UserPage, responses=problem_responses(422))
async def list_users(
    res: Res,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> UserPage:
    """List users, newest first.

    Public profiles only (no e-mail address or phone number), paged with `limit` (1-100) and
    the opaque `cursor` from the previous page's `next_cursor`."""
    return await ListUsers(res.database.read, res.cursors).execute(limit, cursor)


@router.get("/me", response_model=PrivateProfile, responses=problem_responses(401))
async def me(principal: CurrentPrincipal, read: Read) -> PrivateProfile:
    """Get the caller's private profile.

    The signup answer's fields plus `content_count`; 401 without a valid access token."""
    return await GetMyProfile(read).execute(principal)


@router.get("/{user_id}", response_model=UserProfile, responses=problem_responses(404, 422))
async def get_user(user_id: uuid.UUID, read: Read) -> Response:
    """Get a user's public profile with their newest content.

    `contents` lists the user's newest 20 published items; 404 `user_not_found`."""
    # The query serializes the profile once; a returned model would be validated and
    # serialized again by FastAPI.
    body = await GetUser(read).execute(user_id)
    return Response(body, media_type="application/json")
