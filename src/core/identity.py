"""Who is calling: the bearer-token dependency every protected route uses.

The token is an access JWT (see `security.TokenService`); the `OAuth2PasswordBearer` scheme
makes the interactive docs' Authorize button work against `POST /api/v1/auth/token`.

A genuine token is not enough: its session must still be live. Logout, a replayed refresh
token, a password change and deactivation end sessions, and their access tokens are refused
from the very next request. So `current_principal` looks the session up on every
authenticated request — one statement joining `sessions` to `users` by primary key, which
also answers what authorization needs (the role, whether the account is active), so a role
change or a deactivation takes effect on the next request with the tokens already issued.

The look-up reads the **primary**, never the replica: a replica that lags would accept a
session that has just ended (the point of ending it is lost) and refuse one that has just
begun (a fresh login answering 401). It runs on the driver's own connection from the write
engine's pool (`Database.primary`, which holds a few between checks; on a SQLite file, on the
loop's read-only connection, `src/core/db/inline_sqlite.py`) as a prepared statement
(asyncpg and sqlite3 both cache them per connection; `src/core/db/driver.py`): SQLAlchemy's
per-statement cost would otherwise be most of the check (measured in
`loadtests/session_check.py`). Other drivers take the SQLAlchemy Core path.

A token is verified once per request, whoever asks first (rate limit, idempotency, route):
the outcome is kept in the ASGI scope, keyed by the exact token string.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Scope

from src.core.db.driver import DriverConnections
from src.core.errors.types import InvalidToken, Unauthenticated
from src.core.security import TokenClaims, TokenService
from src.core.tables import sessions, users, utcnow

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

Role = Literal["viewer", "creator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "creator", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of this request, as their live session and account say now."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def may_publish(self) -> bool:
        """Creators and admins publish; viewers read, follow and converse."""
        return self.role in ("creator", "admin")


async def current_principal(
    request: Request, token: Annotated[str | None, Depends(bearer)]
) -> Principal:
    if not token:
        raise Unauthenticated()
    resources = request.app.state.resources
    principal = await principal_of(
        request.scope, token, resources.tokens, resources.database.primary
    )
    if principal is None:
        raise InvalidToken()
    return principal


_PRINCIPAL_KEY = "inkwell.principal"


async def principal_of(
    scope: Scope, token: str, tokens: TokenService, primary: DriverConnections
) -> Principal | None:
    """The live principal of access token `token`, or None (invalid token, ended session).

    Looked up at most once per request, whoever asks first (the command boundary before it
    replays a stored answer, or the route), and only reused for the very same token.
    """
    cached = scope.get(_PRINCIPAL_KEY)
    if cached is not None and cached[0] == token:
        known: Principal | None = cached[1]
        return known
    claims = access_claims(scope, token, tokens)
    principal = None if claims is None else await live_principal(primary, claims)
    scope[_PRINCIPAL_KEY] = (token, principal)
    return principal


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


# --- the session check ----------------------------------------------------------------------

# Live: not revoked, not expired, and the account not deactivated. The session must belong
# to the token's subject (a token names both; they cannot disagree unless forged).
_LOOK_UP_SQL = (
    "SELECT s.revoked_at IS NULL AND s.expires_at > {now} AND u.is_active AS live, u.role"
    " FROM sessions AS s JOIN users AS u ON u.id = s.user_id"
    " WHERE s.id = {session} AND s.user_id = {user}"
)
_ASYNCPG_SQL = _LOOK_UP_SQL.format(session="$1", user="$2", now="$3")
_SQLITE_SQL = _LOOK_UP_SQL.format(session=":session", user=":user", now=":now")
_CORE_LOOK_UP = (
    select(
        and_(
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > bindparam("now"),
            users.c.is_active,
        ).label("live"),
        users.c.role,
    )
    .join(users, users.c.id == sessions.c.user_id)
    .where(sessions.c.id == bindparam("session"), sessions.c.user_id == bindparam("user"))
)

Row = tuple[Any, Any] | None
LookUp = Callable[[Any, uuid.UUID, uuid.UUID, dt.datetime], Awaitable[Row]]


async def _asyncpg_look_up(
    driver: Any, session_id: uuid.UUID, user_id: uuid.UUID, now: dt.datetime
) -> Row:
    record = await driver.fetchrow(_ASYNCPG_SQL, session_id, user_id, now)
    return None if record is None else (record[0], record[1])


async def _sqlite_look_up(
    driver: Any, session_id: uuid.UUID, user_id: uuid.UUID, now: dt.datetime
) -> Row:
    # The text forms SQLAlchemy stores on SQLite: UUIDs as 32 hex digits, UTC timestamps as
    # fixed-width text that sorts in time order.
    stamp = now.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    parameters = {"session": session_id.hex, "user": user_id.hex, "now": stamp}
    rows = await driver.execute_fetchall(_SQLITE_SQL, parameters)
    return next(((live, role) for live, role in rows), None)


_RAW_LOOK_UPS: dict[str, LookUp] = {"asyncpg": _asyncpg_look_up, "aiosqlite": _sqlite_look_up}


async def live_principal(primary: DriverConnections, claims: TokenClaims) -> Principal | None:
    """The principal of `claims` if its session is live on the primary, else None."""
    look_up = _RAW_LOOK_UPS.get(primary.driver)
    if look_up is None:
        row = await _core_look_up(primary.engine, claims)
    else:
        row = await _raw_look_up(primary, look_up, claims)
    if row is None or not row[0]:
        return None
    role: Role = row[1] if row[1] in ROLES else "viewer"  # the table's check allows no other
    return Principal(claims.subject, claims.session_id, role)


async def _raw_look_up(primary: DriverConnections, look_up: LookUp, claims: TokenClaims) -> Row:
    async def run(driver: Any) -> Row:
        return await look_up(driver, claims.session_id, claims.subject, utcnow())

    return await primary.run(run, operation="SELECT", collection="sessions")


async def _core_look_up(engine: AsyncEngine, claims: TokenClaims) -> Row:
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        parameters = {"session": claims.session_id, "user": claims.subject, "now": utcnow()}
        found = (await autocommit.execute(_CORE_LOOK_UP, parameters)).first()
    return None if found is None else (found.live, found.role)


# --- the token alone, for the layers in front of the routes ---------------------------------

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
    """The user id behind a genuine bearer access token in the request's headers, else None.

    For middleware that must know the caller before routing (rate limits, idempotency
    scopes). It checks the token's signature and expiry, not its session (that costs a
    database round trip, which the route's `current_principal` pays): the id of a genuine
    token is who the caller claims to be, and an invalid or ended one yields a 401 from the
    route.
    """
    token = bearer_token(scope)
    if token is None:
        return None
    claims = access_claims(scope, token, tokens)
    return str(claims.subject) if claims is not None else None


def bearer_token(scope: Scope) -> str | None:
    """The token of an `Authorization: Bearer …` header, if there is one."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None
