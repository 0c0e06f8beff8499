"""`LogIn` and `Refresh`: exchange credentials (or a refresh token) for a token pair.

An unknown e-mail and a wrong password give the same answer at the same cost: the password is
verified against a dummy bcrypt hash when no user matches. Both read the write table on the
primary (a just-created account can log in at once, even with a lagging replica).
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace
from sqlalchemy import select

from src.core.db.uow import UnitOfWork
from src.core.errors.types import InvalidCredentials, InvalidToken
from src.core.security import PasswordHasher, TokenPair, TokenService
from src.core.tables import users
from src.core.validation import login_email

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class LogInCommand:
    email: str
    password: str


@dataclass(frozen=True, slots=True)
class RefreshCommand:
    refresh_token: str


@dataclass(frozen=True, slots=True)
class LogIn:
    uow: UnitOfWork
    hasher: PasswordHasher
    tokens: TokenService

    async def execute(self, command: LogInCommand) -> TokenPair:
        with tracer.start_as_current_span("auth.login") as span:
            # Spelled as signup stored it. No account can have a string that is not an
            # address (or one the database cannot even store): that is an unknown e-mail.
            address = login_email(command.email)
            row = None
            if address is not None:
                async with self.uow.reader() as connection:
                    row = (
                        await connection.execute(
                            select(users.c.id, users.c.password_hash).where(
                                users.c.email == address
                            )
                        )
                    ).first()
            stored_hash = row.password_hash if row is not None else None
            if not await self.hasher.verify(command.password, stored_hash) or row is None:
                span.set_attribute("auth.outcome", "invalid_credentials")
                raise InvalidCredentials()
            span.set_attribute("user.id", str(row.id))
            return self.tokens.issue_pair(row.id)


@dataclass(frozen=True, slots=True)
class Refresh:
    uow: UnitOfWork
    tokens: TokenService

    async def execute(self, command: RefreshCommand) -> TokenPair:
        with tracer.start_as_current_span("auth.refresh") as span:
            claims = self.tokens.decode(command.refresh_token, "refresh")
            span.set_attribute("user.id", str(claims.subject))
            async with self.uow.reader() as connection:
                exists = (
                    await connection.execute(select(users.c.id).where(users.c.id == claims.subject))
                ).first()
            if exists is None:
                raise InvalidToken()
            return self.tokens.issue_pair(claims.subject)
