from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm

from src.core.db.uow import UnitOfWork
from src.core.errors.openapi import problem_responses
from src.core.resources import Resources, resources, unit_of_work
from src.core.security import TokenPair
from src.slices.auth.commands import LogIn, LogInCommand, Refresh, RefreshCommand
from src.slices.auth.schemas import LoginRequest, RefreshRequest, TokenResponse

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

Res = Annotated[Resources, Depends(resources)]
Uow = Annotated[UnitOfWork, Depends(unit_of_work)]
_ERRORS = problem_responses(401, 422)


async def _log_in(res: Res, uow: Uow) -> LogIn:
    return LogIn(uow, res.hasher, res.tokens)


def _answer(pair: TokenPair, response: Response) -> TokenResponse:
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/login", response_model=TokenResponse, responses=_ERRORS)
async def login(
    body: LoginRequest, response: Response, use_case: Annotated[LogIn, Depends(_log_in)]
) -> TokenResponse:
    return _answer(await use_case.execute(LogInCommand(body.email, body.password)), response)


@router.post(
    "/token",
    response_model=TokenResponse,
    responses=_ERRORS,
    summary="Log in with an OAuth2 password form (used by the docs' Authorize button)",
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    response: Response,
    use_case: Annotated[LogIn, Depends(_log_in)],
) -> TokenResponse:
    return _answer(await use_case.execute(LogInCommand(form.username, form.password)), response)


@router.post("/refresh", response_model=TokenResponse, responses=_ERRORS)
async def refresh(body: RefreshRequest, response: Response, res: Res, uow: Uow) -> TokenResponse:
    pair = await Refresh(uow, res.tokens).execute(RefreshCommand(body.refresh_token))
    return _answer(pair, response)
