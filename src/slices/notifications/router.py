from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from src.core.db.read import ReadHandle
from src.core.db.uow import UnitOfWork
from src.core.errors.openapi import problem_responses
from src.core.identity import CurrentPrincipal
from src.core.resources import Resources, read_side, resources, unit_of_work
from src.slices.notifications.commands import (
    MarkAllNotificationsRead,
    MarkAllNotificationsReadCommand,
    MarkNotificationRead,
    MarkNotificationReadCommand,
)
from src.slices.notifications.queries import ListNotifications
from src.slices.notifications.schemas import NotificationPage

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])

Res = Annotated[Resources, Depends(resources)]
Read = Annotated[ReadHandle, Depends(read_side)]
Uow = Annotated[UnitOfWork, Depends(unit_of_work)]


@router.get("", response_model=NotificationPage, responses=problem_responses(401, 422))
async def list_notifications(
    principal: CurrentPrincipal,
    res: Res,
    read: Read,
    unread: Annotated[bool, Query(description="Only the unread ones.")] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """List the caller's notifications, newest first.

    `content_published` (someone the caller follows published an item: `actor` and
    `content`) and `new_follower` (someone followed the caller: `actor`), made by the event
    worker shortly after what they tell of. `unread=true` lists only those not yet read;
    `unread_count` counts them either way; paged with `limit` (1-100) and `cursor`."""
    body = await ListNotifications(read, res.cursors).execute(principal, unread, limit, cursor)
    return Response(body, media_type="application/json")


# Declared before `/{notification_id}/read`, which it does not match anyway (two segments).
@router.post(
    "/read-all",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401),
)
async def mark_all_notifications_read(principal: CurrentPrincipal, uow: Uow) -> Response:
    """Mark every notification of the caller read.

    204, also when none was unread; one made after this request stays unread."""
    await MarkAllNotificationsRead(uow).execute(MarkAllNotificationsReadCommand(principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{notification_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 404, 422),
)
async def mark_notification_read(
    notification_id: uuid.UUID, principal: CurrentPrincipal, uow: Uow
) -> Response:
    """Mark one of the caller's notifications read.

    204, again on a repeat (it keeps the moment it was first read); 404
    `notification_not_found` for an unknown id and for anyone else's notification."""
    command = MarkNotificationReadCommand(principal, notification_id)
    await MarkNotificationRead(uow).execute(command)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
