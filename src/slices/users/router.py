from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from src.core.db.read import ReadHandle
from src.core.db.uow import UnitOfWork
from src.core.errors.openapi import problem_responses
from src.core.identity import CurrentPrincipal
from src.core.resources import Resources, read_side, resources, unit_of_work
from src.slices.users.commands import (
    ChangePassword,
    ChangePasswordCommand,
    FollowUser,
    FollowUserCommand,
    UnfollowUser,
    UnfollowUserCommand,
    UpdateProfile,
    UpdateProfileCommand,
    UpdateUserAsAdmin,
    UpdateUserAsAdminCommand,
)
from src.slices.users.queries import GetMyProfile, GetUser, ListUsers
from src.slices.users.schemas import (
    AdminUserUpdate,
    PasswordChange,
    PrivateProfile,
    ProfileUpdate,
    UserPage,
    UserProfile,
)

router = APIRouter(prefix="/api/v1/users", tags=["users"])
admin_router = APIRouter(prefix="/api/v1/admin/users", tags=["admin"])

Res = Annotated[Resources, Depends(resources)]
Read = Annotated[ReadHandle, Depends(read_side)]
Uow = Annotated[UnitOfWork, Depends(unit_of_work)]


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

    The signup answer's fields (with `role` and `is_active`) plus `content_count`; 401
    without a valid access token."""
    return await GetMyProfile(read).execute(principal)


@router.patch("/me", response_model=PrivateProfile, responses=problem_responses(401, 409, 422))
async def update_my_profile(
    body: ProfileUpdate, principal: CurrentPrincipal, uow: Uow
) -> PrivateProfile:
    """Change any of `name, display_name, phone_number, country, state` (the signup rules).

    `null` clears an optional field; a display name cleared (or empty) is the name again. A
    new name or display name reaches every copy at once: the author of each of the caller's
    content items shows it on the very next read, cached or not. 409 `phone_taken` when
    another account has the phone number.
    """
    changes = {field: getattr(body, field) for field in body.model_fields_set}
    account = await UpdateProfile(uow).execute(UpdateProfileCommand(principal, changes))
    return PrivateProfile.model_validate(account)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 403, 422),
)
async def change_password(
    body: PasswordChange, principal: CurrentPrincipal, res: Res, uow: Uow
) -> Response:
    """Replace the password; 403 `wrong_password` when `current_password` is not it.

    Every session of the account ends: the old password no longer logs in, and every access
    and refresh token issued before is refused (401 `invalid_token`). Log in again.
    """
    command = ChangePasswordCommand(principal, body.current_password, body.new_password)
    await ChangePassword(uow, res.hasher).execute(command)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{user_id}", response_model=UserProfile, responses=problem_responses(404, 422))
async def get_user(user_id: uuid.UUID, read: Read) -> Response:
    """Get a user's public profile with their newest content.

    `contents` lists the user's newest 20 published items; 404 `user_not_found`."""
    # The query serializes the profile once; a returned model would be validated and
    # serialized again by FastAPI.
    body = await GetUser(read).execute(user_id)
    return Response(body, media_type="application/json")


@router.put(
    "/{user_id}/follow",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 404, 422),
)
async def follow_user(user_id: uuid.UUID, principal: CurrentPrincipal, uow: Uow) -> Response:
    """Follow a user: their published content appears in the caller's feed.

    204 whether or not the caller already followed them; a repeated follow changes nothing
    (no second notification, the counts unchanged). The user's `follower_count` and the
    caller's `following_count` count it on the very next read. 404 `user_not_found` for an
    unknown or deactivated user; 422 `validation_error` for the caller's own id."""
    await FollowUser(uow).execute(FollowUserCommand(principal, user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{user_id}/follow",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 404, 422),
)
async def unfollow_user(user_id: uuid.UUID, principal: CurrentPrincipal, uow: Uow) -> Response:
    """Stop following a user.

    204, also when the caller did not follow them (nothing changes then); their items leave
    the caller's feed at once. A deactivated user can be unfollowed; 404 `user_not_found` for
    an id that is no user; 422 `validation_error` for the caller's own id."""
    await UnfollowUser(uow).execute(UnfollowUserCommand(principal, user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@admin_router.patch(
    "/{user_id}", response_model=PrivateProfile, responses=problem_responses(401, 403, 404, 422)
)
async def update_user_as_admin(
    user_id: uuid.UUID, body: AdminUserUpdate, principal: CurrentPrincipal, uow: Uow
) -> PrivateProfile:
    """Admins only: change a user's `role` or deactivate (`is_active: false`) or reactivate
    them; the answer is that user's private profile.

    The change takes effect on the user's next request, with the tokens they already hold;
    a deactivated user's tokens are refused and their login answers 403 `account_disabled`.
    403 `forbidden` for a caller who is not an admin, and for an admin changing their own
    role or deactivating themselves; 404 `user_not_found`.
    """
    command = UpdateUserAsAdminCommand(principal, user_id, body.role, body.is_active)
    return PrivateProfile.model_validate(await UpdateUserAsAdmin(uow).execute(command))
