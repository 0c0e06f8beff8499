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
    """Log in with an e-mail address and a password.

    Answers a bearer access token and a refresh token. An unknown address and a wrong password
    get the same 401 `invalid_credentials`, in about the same time."""
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
    """The OAuth2 password flow (`username` is the e-mail address), so that the
    interactive docs' Authorize button works; answers like `logIn`."""
    return _answer(await use_case.execute(LogInCommand(form.username, form.password)), response)


@router.post("/refresh", response_model=TokenResponse, responses=_ERRORS)
async def refresh(body: RefreshRequest, response: Response, res: Res, uow: Uow) -> TokenResponse:
    """Exchange a refresh token for a new pair of tokens.

    An access token, or an expired, revoked or forged token, is 401 `invalid_token`."""
    pair = await Refresh(uow, res.tokens).execute(RefreshCommand(body.refresh_token))
    return _answer(pair, response)
