"""Who is calling: the bearer-token dependency every protected route uses.

The token is an access JWT (see `security.TokenService`); the `OAuth2PasswordBearer` scheme
makes the interactive docs' Authorize button work against `POST /api/v1/auth/token`.
Whether the user still exists is for the use case to decide (it reads the row anyway).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from src.core.errors import InvalidToken, Unauthenticated
from src.core.security import TokenService

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID


async def current_principal(
    request: Request, token: Annotated[str | None, Depends(bearer)]
) -> Principal:
    if not token:
        raise Unauthenticated()
    claims = request.app.state.resources.tokens.decode(token, "access")
    principal = Principal(claims.subject)
    request.scope.setdefault("state", {})["principal"] = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def caller_from_headers(headers: list[tuple[bytes, bytes]], tokens: TokenService) -> str | None:
    """The user id behind a valid bearer access token in raw ASGI headers, else None.

    For middleware that must know the caller before routing (rate limits, idempotency
    scopes). An invalid token yields None here and a 401 later, from the route.
    """
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            try:
                return str(tokens.decode(token.strip(), "access").subject)
            except InvalidToken:
                return None
    return None
