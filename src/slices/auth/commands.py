"""Sessions: `LogIn` starts one, `Refresh` rotates its refresh token, `LogOut` ends it.

A login is a row in `sessions`; both of its tokens carry the row's id (`sid`), and the row
keeps the `jti` of the one refresh token that may still be exchanged. Every read here goes to
the write tables on the primary (a just-created account can log in at once, a just-ended
session is ended everywhere, even with a lagging replica).

* An unknown e-mail and a wrong password give the same answer at the same cost: the password
  is verified against a dummy bcrypt hash when no user matches. Only a right password learns
  that the account is deactivated (403 `account_disabled`).
* The session is inserted only if the account still has the very hash the password was
  verified against and is still active, read under a row lock: a password change or a
  deactivation that commits while bcrypt runs cannot be outlived by a session started with
  the old password.
* Refresh **rotates**: the session's `refresh_token_id` moves to the new token's `jti` in one
  conditional UPDATE, so of two concurrent refreshes with one token exactly one succeeds (the
  row lock on PostgreSQL, the database write lock on SQLite); the other is a 401. A genuine
  refresh token of the session that is no longer its current one has been spent: presenting
  it again revokes the whole session. That revocation must outlive the 401 it answers (the
  request's unit of work rolls back on every refusal), so it commits in a unit of work of
  its own, before the request's transaction begins.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Literal

from opentelemetry import trace
from sqlalchemy import Update, exists, insert, select, update

from src.core.db.uow import UnitOfWork, UnitOfWorkFactory, command_transaction
from src.core.errors.types import Forbidden, InvalidCredentials, InvalidToken
from src.core.security import PasswordHasher, TokenClaims, TokenPair, TokenService
from src.core.tables import sessions, users, utcnow
from src.core.validation import login_email
from src.slices.auth.errors import AccountDisabled

tracer = trace.get_tracer(__name__)

# Why a session ended (`sessions.revoked_reason`).
RevokedReason = Literal["logout", "refresh_reused", "password_changed", "deactivated"]


@dataclass(frozen=True, slots=True)
class LogInCommand:
    email: str
    password: str


@dataclass(frozen=True, slots=True)
class RefreshCommand:
    refresh_token: str


@dataclass(frozen=True, slots=True)
class LogOutCommand:
    refresh_token: str
    caller: uuid.UUID | None  # the account of a valid access token sent along, if any


def _when(epoch_seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_seconds, dt.UTC)


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
                            select(users.c.id, users.c.password_hash, users.c.is_active).where(
                                users.c.email == address
                            )
                        )
                    ).first()
            stored_hash = row.password_hash if row is not None else None
            if not await self.hasher.verify(command.password, stored_hash) or row is None:
                span.set_attribute("auth.outcome", "invalid_credentials")
                raise InvalidCredentials()
            span.set_attribute("user.id", str(row.id))
            if not row.is_active:
                span.set_attribute("auth.outcome", "account_disabled")
                raise AccountDisabled()
            await self._still_verified(row.id, row.password_hash)
            session_id = uuid.uuid4()
            pair = self.tokens.issue_pair(row.id, session_id)
            now = utcnow()
            await self.uow.execute(
                insert(sessions).values(
                    id=session_id,
                    user_id=row.id,
                    refresh_token_id=pair.refresh_token_id,
                    created_at=now,
                    expires_at=_when(pair.refresh_expires_at),
                )
            )
            span.set_attribute("session.id", str(session_id))
            return pair

    async def _still_verified(self, user_id: uuid.UUID, verified_hash: str) -> None:
        """Refuse the login if the password or the account state changed during bcrypt."""
        query = select(users.c.password_hash, users.c.is_active).where(users.c.id == user_id)
        if self.uow.dialect == "postgresql":
            query = query.with_for_update(read=True)  # waits for a change that is committing
        now = (await self.uow.execute(query)).first()
        if now is None or now.password_hash != verified_hash:
            raise InvalidCredentials()
        if not now.is_active:
            raise AccountDisabled()


@dataclass(frozen=True, slots=True)
class Refresh:
    uow: UnitOfWork
    tokens: TokenService
    unit_of_work: UnitOfWorkFactory  # for the revocation that must outlive the refusal

    async def execute(self, command: RefreshCommand) -> TokenPair:
        with tracer.start_as_current_span("auth.refresh") as span:
            claims = self.tokens.decode(command.refresh_token, "refresh")
            span.set_attribute("user.id", str(claims.subject))
            span.set_attribute("session.id", str(claims.session_id))
            async with self.uow.reader() as connection:
                current = (
                    await connection.execute(
                        select(sessions.c.refresh_token_id).where(
                            sessions.c.id == claims.session_id,
                            sessions.c.user_id == claims.subject,
                            sessions.c.revoked_at.is_(None),
                        )
                    )
                ).scalar()
            if current is None:  # no such session, or it has ended
                raise InvalidToken()
            if current != claims.token_id:
                await self._revoke_replayed(claims)
                span.set_attribute("auth.outcome", "refresh_reused")
                raise InvalidToken()
            return await self._rotate(claims)

    async def _rotate(self, claims: TokenClaims) -> TokenPair:
        pair = self.tokens.issue_pair(claims.subject, claims.session_id)
        now = utcnow()
        account_active = exists().where(users.c.id == sessions.c.user_id, users.c.is_active)
        rotated = await self.uow.execute(
            update(sessions)
            .where(
                sessions.c.id == claims.session_id,
                sessions.c.user_id == claims.subject,
                sessions.c.refresh_token_id == claims.token_id,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > now,
                account_active,
            )
            .values(
                refresh_token_id=pair.refresh_token_id,
                refreshed_at=now,
                expires_at=_when(pair.refresh_expires_at),
            )
            .returning(sessions.c.id)
        )
        if rotated.first() is None:  # ended or expired meanwhile, or a concurrent refresh won
            raise InvalidToken()
        return pair

    async def _revoke_replayed(self, claims: TokenClaims) -> None:
        """End the session: `claims` is a genuine refresh token of it, but not its current one.

        Tokens are signed, so such a token was current once and has been exchanged since: it
        is being replayed. The revocation commits on its own, whatever this request answers.
        """
        async with command_transaction(self.unit_of_work()) as side:
            await side.execute(
                revocation(claims.session_id, claims.subject, "refresh_reused", utcnow()).where(
                    sessions.c.refresh_token_id != claims.token_id
                )
            )


@dataclass(frozen=True, slots=True)
class LogOut:
    uow: UnitOfWork
    tokens: TokenService

    async def execute(self, command: LogOutCommand) -> None:
        """End the session of `command.refresh_token`; done already is fine too.

        The refresh token is the credential (a client whose access token has expired can
        still log out). A genuine token past its expiry belongs to a session that is over or
        has moved on to a newer token: nothing to end through it.
        """
        with tracer.start_as_current_span("auth.logout") as span:
            claims = self.tokens.decode(command.refresh_token, "refresh", allow_expired=True)
            span.set_attribute("session.id", str(claims.session_id))
            if command.caller is not None and command.caller != claims.subject:
                raise Forbidden("This refresh token belongs to another account.")
            now = utcnow()
            if _when(claims.expires_at) <= now:
                return
            await self.uow.execute(revocation(claims.session_id, claims.subject, "logout", now))


def revocation(
    session_id: uuid.UUID, user_id: uuid.UUID, reason: RevokedReason, now: dt.datetime
) -> Update:
    """The UPDATE that ends session `session_id` of `user_id` if it is still live."""
    return (
        update(sessions)
        .where(
            sessions.c.id == session_id,
            sessions.c.user_id == user_id,
            sessions.c.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_reason=reason)
    )
