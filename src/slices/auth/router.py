from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from src.core.db.uow import UnitOfWork
from src.core.errors.openapi import problem_responses
from src.core.identity import caller_from_scope
from src.core.resources import Resources, resources, unit_of_work
from src.core.security import TokenPair
from src.slices.auth.commands import (
    LogIn,
    LogInCommand,
    LogOut,
    LogOutCommand,
    Refresh,
    RefreshCommand,
)
from src.slices.auth.schemas import LoginRequest, LogoutRequest, RefreshRequest, TokenResponse

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

Res = Annotated[Resources, Depends(resources)]
Uow = Annotated[UnitOfWork, Depends(unit_of_work)]
_LOGIN_ERRORS = problem_responses(401, 403, 422)


async def _log_in(res: Res, uow: Uow) -> LogIn:
    return LogIn(uow, res.hasher, res.tokens)


def _answer(pair: TokenPair, response: Response) -> TokenResponse:
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/login", response_model=TokenResponse, responses=_LOGIN_ERRORS)
async def login(
    body: LoginRequest, response: Response, use_case: Annotated[LogIn, Depends(_log_in)]
) -> TokenResponse:
    """Start a session: a token pair whose tokens carry the new session's id (`sid`).

    401 `invalid_credentials` for an unknown e-mail or a wrong password (the same answer, at
    the same cost); 403 `account_disabled` for the right password of a deactivated account.
    """
    return _answer(await use_case.execute(LogInCommand(body.email, body.password)), response)


@router.post(
    "/token",
    response_model=TokenResponse,
    responses=_LOGIN_ERRORS,
    summary="Log in with an OAuth2 password form (used by the docs' Authorize button)",
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    response: Response,
    use_case: Annotated[LogIn, Depends(_log_in)],
) -> TokenResponse:
    """As `POST /api/v1/auth/login`, with the e-mail address as `username`."""
    return _answer(await use_case.execute(LogInCommand(form.username, form.password)), response)


@router.post("/refresh", response_model=TokenResponse, responses=problem_responses(401, 422))
async def refresh(body: RefreshRequest, response: Response, res: Res, uow: Uow) -> TokenResponse:
    """Exchange the session's current refresh token for a new pair (rotation).

    The refresh token given is spent. Presenting a spent refresh token again is 401
    `invalid_token` and ends the whole session: its newest tokens are refused from then on.
    """
    pair = await Refresh(uow, res.tokens, res.unit_of_work).execute(
        RefreshCommand(body.refresh_token)
    )
    return _answer(pair, response)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 403, 422),
)
async def log_out(body: LogoutRequest, request: Request, res: Res, uow: Uow) -> Response:
    """End the session of `refresh_token`: its access and refresh tokens are refused afterwards.

    204 also when the session is already over (logged out, revoked, expired). The refresh
    token is the credential, so a client whose access token has expired can still log out;
    an `Authorization: Bearer` access token sent along must be of the same account (else 403
    `forbidden`, and the session is left alone). 401 `invalid_token` for anything that is not
    a genuine refresh token.
    """
    caller = caller_from_scope(request.scope, res.tokens)
    command = LogOutCommand(body.refresh_token, uuid.UUID(caller) if caller else None)
    await LogOut(uow, res.tokens).execute(command)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
