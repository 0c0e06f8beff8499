"""Who is calling: the bearer-token dependency every protected route uses.

The token is an access JWT (see `security.TokenService`); the `OAuth2PasswordBearer` scheme
makes the interactive docs' Authorize button work against `POST /api/v1/auth/token`.
Whether the user still exists is for the use case to decide (it reads the row anyway).

A token is verified once per request, whoever asks first (rate limit, idempotency, route):
the outcome is kept in the ASGI scope, keyed by the exact token string.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.types import Scope

from src.core.errors.types import InvalidToken, Unauthenticated
from src.core.security import TokenClaims, TokenService

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID


async def current_principal(
    request: Request, token: Annotated[str | None, Depends(bearer)]
) -> Principal:
    if not token:
        raise Unauthenticated()
    claims = access_claims(request.scope, token, request.app.state.resources.tokens)
    if claims is None:
        raise InvalidToken()
    return Principal(claims.subject)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def optional_principal(
    request: Request, token: Annotated[str | None, Depends(bearer)]
) -> Principal | None:
    """The caller on a route anyone may read, where a token may show more (the caller's own
    drafts): None without a token; a token that is sent must be valid (401 otherwise), so a
    client with an expired token learns it instead of silently reading as anonymous."""
    if not token:
        return None
    return await current_principal(request, token)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


_CLAIMS_KEY = "inkwell.access_claims"


def access_claims(scope: Scope, token: str, tokens: TokenService) -> TokenClaims | None:
    """The verified claims of access token `token`, or None when it is not valid.

    Decoded at most once per request: the result (valid or not) is kept in `scope` for the
    other layers that need the caller, and only reused for the very same token string.
    """
    cached = scope.get(_CLAIMS_KEY)
    if cached is not None and cached[0] == token:
        known: TokenClaims | None = cached[1]
        return known
    try:
        claims: TokenClaims | None = tokens.decode(token, "access")
    except InvalidToken:
        claims = None
    scope[_CLAIMS_KEY] = (token, claims)
    return claims


def caller_from_scope(scope: Scope, tokens: TokenService) -> str | None:
    """The user id behind a valid bearer access token in the request's headers, else None.

    For middleware that must know the caller before routing (rate limits, idempotency
    scopes). An invalid token yields None here and a 401 later, from the route.
    """
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            claims = access_claims(scope, token.strip(), tokens)
            return str(claims.subject) if claims is not None else None
    return None
