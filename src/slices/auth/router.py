from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm

from src.core.errors import problem_responses
from src.core.resources import Resources, resources
from src.core.security import TokenPair
from src.slices.auth.commands import LogIn, Refresh
from src.slices.auth.schemas import LoginRequest, RefreshRequest, TokenResponse

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

Res = Annotated[Resources, Depends(resources)]
_ERRORS = problem_responses(401, 422)


async def _log_in(res: Res) -> LogIn:
    return LogIn(res.database.write_engine, res.hasher, res.tokens)


def _answer(pair: TokenPair, response: Response) -> TokenResponse:
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/login", response_model=TokenResponse, responses=_ERRORS)
async def login(
    body: LoginRequest, response: Response, use_case: Annotated[LogIn, Depends(_log_in)]
) -> TokenResponse:
    return _answer(await use_case.execute(body.email, body.password), response)


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
    return _answer(await use_case.execute(form.username, form.password), response)


@router.post("/refresh", response_model=TokenResponse, responses=_ERRORS)
async def refresh(body: RefreshRequest, response: Response, res: Res) -> TokenResponse:
    pair = await Refresh(res.database.write_engine, res.tokens).execute(body.refresh_token)
    return _answer(pair, response)
