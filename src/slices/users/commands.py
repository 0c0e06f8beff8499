"""Commands of the users slice: the caller's own account, and what admins do to accounts.

* `UpdateProfile` — `PATCH /users/me`: the fields given change; `ProfileUpdated` carries the
  new profile and which fields changed, so the projectors rewrite `users_read` and every
  content row of the author in this transaction (the content projector subscribes to it).
* `ChangePassword` — `POST /users/me/password`: verifies the current password, stores the
  new hash and ends every session of the account.
* `UpdateUserAsAdmin` — `PATCH /admin/users/{id}`: role and activation. Deactivating ends
  the account's sessions (and login refuses it); a role change reaches the account's next
  request, since `current_principal` reads the role with the session.
* `PromoteAdmin` — `inkwell promote-admin EMAIL`: the same role change, found by e-mail.
* `FollowUser` / `UnfollowUser` — `PUT` / `DELETE /users/{id}/follow`: one `follows` row per
  pair, made or removed by one statement whose outcome says whether anything changed, so
  `UserFollowed` / `UserUnfollowed` are emitted exactly when a row was made or removed — of
  two concurrent follows of the same pair, the second waits on the first's row and inserts
  nothing. The projectors move the counts in the same transaction.

Their answer, the private profile, is read from the write tables in the command's own
transaction (commands never read read tables): `content_count` and the follow counts count
like the users projector's rebuild does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from sqlalchemy import Update, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from src.core.db.uow import UnitOfWork, violated_unique
from src.core.errors.types import Forbidden, InvalidToken, ValidationFailed
from src.core.identity import Principal, Role
from src.core.security import PasswordHasher
from src.core.tables import follows, sessions, users, utcnow
from src.slices.users.errors import PhoneTaken, UserNotFound, WrongPassword
from src.slices.users.events import (
    PasswordChanged,
    ProfileUpdated,
    RoleChanged,
    UserDeactivated,
    UserFollowed,
    UserReactivated,
    UserUnfollowed,
)
from src.slices.users.projector import content_count, follower_count, following_count

tracer = trace.get_tracer(__name__)

PROFILE_FIELDS = ("name", "display_name", "phone_number", "country", "state")


@dataclass(frozen=True, slots=True)
class Account:
    """A user's private profile, as the write tables have it in the command's transaction."""

    id: uuid.UUID
    name: str
    email: str
    display_name: str
    phone_number: str | None
    country: str | None
    state: str | None
    role: Role
    is_active: bool
    created_at: dt.datetime
    content_count: int
    follower_count: int
    following_count: int


_ACCOUNT_COLUMNS = (
    users.c.id,
    users.c.name,
    users.c.email,
    users.c.display_name,
    users.c.phone_number,
    users.c.country,
    users.c.state,
    users.c.role,
    users.c.is_active,
    users.c.created_at,
    content_count(users.c.id).label("content_count"),
    follower_count(users.c.id).label("follower_count"),
    following_count(users.c.id).label("following_count"),
)


async def _account(uow: UnitOfWork, user_id: uuid.UUID) -> Account | None:
    """The account, its row locked for the rest of the transaction (SQLite's writers queue on
    the database lock anyway)."""
    query = select(*_ACCOUNT_COLUMNS).where(users.c.id == user_id)
    if uow.dialect == "postgresql":
        query = query.with_for_update(of=users)
    row = (await uow.execute(query)).first()
    return None if row is None else Account(**row._mapping)


def _end_sessions(user_id: uuid.UUID, reason: str, now: dt.datetime) -> Update:
    """Revoke every live session of `user_id`: their access and refresh tokens are refused."""
    return (
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


# --- the caller's own account -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpdateProfileCommand:
    actor: Principal
    # The fields given, each with its new value (None clears an optional field; a display
    # name cleared or left empty is the name, as at signup).
    changes: Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class UpdateProfile:
    uow: UnitOfWork

    async def execute(self, command: UpdateProfileCommand) -> Account:
        with tracer.start_as_current_span("users.update_profile") as span:
            user_id = command.actor.user_id
            span.set_attribute("user.id", str(user_id))
            wanted = dict(command.changes)
            phone = wanted.get("phone_number")
            if phone is not None:
                await self._refuse_taken_phone(user_id, phone)
            current = await _account(self.uow, user_id)
            if current is None:  # a live session whose account is gone
                raise InvalidToken()
            if "display_name" in wanted and not wanted["display_name"]:
                wanted["display_name"] = wanted.get("name") or current.name
            changes: dict[str, Any] = {
                field: value
                for field, value in wanted.items()
                if field in PROFILE_FIELDS and getattr(current, field) != value
            }
            span.set_attribute("users.changed", sorted(changes))
            if not changes:
                return current
            now = utcnow()
            try:
                await self.uow.execute(
                    update(users).where(users.c.id == user_id).values(**changes, updated_at=now)
                )
            except IntegrityError as error:
                if violated_unique(error, "users", "phone_number"):
                    raise PhoneTaken() from error
                raise
            account = dataclasses.replace(current, **changes)
            self.uow.emit(
                ProfileUpdated(
                    user_id=user_id,
                    name=account.name,
                    display_name=account.display_name,
                    phone_number=account.phone_number,
                    country=account.country,
                    state=account.state,
                    updated_at=now,
                    changed=frozenset(changes),
                )
            )
            return account

    async def _refuse_taken_phone(self, user_id: uuid.UUID, phone: str) -> None:
        """A cheap refusal before any lock; the unique constraint decides a race."""
        async with self.uow.reader() as connection:
            holder = (
                await connection.execute(
                    select(users.c.id).where(users.c.phone_number == phone, users.c.id != user_id)
                )
            ).first()
        if holder is not None:
            raise PhoneTaken()


@dataclass(frozen=True, slots=True)
class ChangePasswordCommand:
    actor: Principal
    current_password: str
    new_password: str


@dataclass(frozen=True, slots=True)
class ChangePassword:
    uow: UnitOfWork
    hasher: PasswordHasher

    async def execute(self, command: ChangePasswordCommand) -> None:
        with tracer.start_as_current_span("users.change_password") as span:
            user_id = command.actor.user_id
            span.set_attribute("user.id", str(user_id))
            async with self.uow.reader() as connection:  # bcrypt holds no connection or lock
                stored = (
                    await connection.execute(
                        select(users.c.password_hash).where(users.c.id == user_id)
                    )
                ).scalar()
            if stored is None:
                raise InvalidToken()
            if not await self.hasher.verify(command.current_password, stored):
                raise WrongPassword()
            new_hash = await self.hasher.hash(command.new_password)
            now = utcnow()
            # Only over the hash just verified: of two concurrent changes, the second finds
            # the password it was given no longer current.
            replaced = await self.uow.execute(
                update(users)
                .where(users.c.id == user_id, users.c.password_hash == stored)
                .values(password_hash=new_hash, password_changed_at=now, updated_at=now)
                .returning(users.c.id)
            )
            if replaced.first() is None:
                raise WrongPassword()
            await self.uow.execute(_end_sessions(user_id, "password_changed", now))
            self.uow.emit(PasswordChanged(user_id=user_id, changed_at=now))


# --- what admins do -------------------------------------------------------------------------


async def _set_role(uow: UnitOfWork, user_id: uuid.UUID, role: Role, now: dt.datetime) -> None:
    await uow.execute(update(users).where(users.c.id == user_id).values(role=role, updated_at=now))
    uow.emit(RoleChanged(user_id=user_id, role=role, changed_at=now))


@dataclass(frozen=True, slots=True)
class UpdateUserAsAdminCommand:
    actor: Principal
    user_id: uuid.UUID
    role: Role | None = None  # None: unchanged
    is_active: bool | None = None  # None: unchanged


@dataclass(frozen=True, slots=True)
class UpdateUserAsAdmin:
    uow: UnitOfWork

    async def execute(self, command: UpdateUserAsAdminCommand) -> Account:
        with tracer.start_as_current_span("users.update_as_admin") as span:
            actor = command.actor
            span.set_attribute("user.id", str(actor.user_id))
            span.set_attribute("users.target", str(command.user_id))
            if not actor.is_admin:  # before any look-up: ids cannot be probed
                raise Forbidden("Only an admin may manage users.")
            if command.user_id == actor.user_id:
                if command.role is not None and command.role != actor.role:
                    raise Forbidden("An admin cannot change their own role.")
                if command.is_active is False:
                    raise Forbidden("An admin cannot deactivate their own account.")
            target = await _account(self.uow, command.user_id)
            if target is None:
                raise UserNotFound()
            now = utcnow()
            if command.role is not None and command.role != target.role:
                await _set_role(self.uow, target.id, command.role, now)
                target = dataclasses.replace(target, role=command.role)
            if command.is_active is not None and command.is_active != target.is_active:
                await self._set_active(target.id, command.is_active, now)
                target = dataclasses.replace(target, is_active=command.is_active)
            return target

    async def _set_active(self, user_id: uuid.UUID, active: bool, now: dt.datetime) -> None:
        await self.uow.execute(
            update(users).where(users.c.id == user_id).values(is_active=active, updated_at=now)
        )
        if active:
            self.uow.emit(UserReactivated(user_id=user_id, changed_at=now))
            return
        # Refused on every request already (the session check reads is_active); ended too,
        # so reactivating the account does not bring old tokens back to life.
        await self.uow.execute(_end_sessions(user_id, "deactivated", now))
        self.uow.emit(UserDeactivated(user_id=user_id, changed_at=now))


@dataclass(frozen=True, slots=True)
class PromoteAdminCommand:
    email: str


@dataclass(frozen=True, slots=True)
class PromoteAdmin:
    uow: UnitOfWork

    async def execute(self, command: PromoteAdminCommand) -> None:
        user_id = (
            await self.uow.execute(select(users.c.id).where(users.c.email == command.email.lower()))
        ).scalar()
        if user_id is None:
            raise UserNotFound("No user has this e-mail address.")
        await _set_role(self.uow, user_id, "admin", utcnow())


# --- follows ----------------------------------------------------------------------------------


def _not_yourself(actor: Principal, user_id: uuid.UUID) -> None:
    if user_id == actor.user_id:
        raise ValidationFailed(
            "You cannot follow yourself.",
            errors=[{"parameter": "user_id", "detail": "This is the caller's own id."}],
        )


@dataclass(frozen=True, slots=True)
class FollowUserCommand:
    actor: Principal
    user_id: uuid.UUID  # whom to follow


@dataclass(frozen=True, slots=True)
class FollowUser:
    uow: UnitOfWork

    async def execute(self, command: FollowUserCommand) -> bool:
        """Whether a follow was made (False: the caller already followed the user)."""
        with tracer.start_as_current_span("users.follow") as span:
            actor = command.actor
            span.set_attribute("user.id", str(actor.user_id))
            span.set_attribute("users.target", str(command.user_id))
            _not_yourself(actor, command.user_id)
            rows = (
                await self.uow.execute(
                    select(users.c.id, users.c.name, users.c.display_name, users.c.is_active).where(
                        users.c.id.in_((actor.user_id, command.user_id))
                    )
                )
            ).all()
            found = {row.id: row for row in rows}
            followee = found.get(command.user_id)
            if followee is None or not followee.is_active:
                raise UserNotFound()
            follower = found.get(actor.user_id)
            if follower is None:  # a live session whose account is gone
                raise InvalidToken()
            now = utcnow()
            on_postgres = self.uow.dialect == "postgresql"
            dialect_insert = postgresql.insert if on_postgres else sqlite.insert
            made = await self.uow.execute(
                dialect_insert(follows)
                .values(follower_id=actor.user_id, followee_id=command.user_id, created_at=now)
                .on_conflict_do_nothing(index_elements=["follower_id", "followee_id"])
                .returning(follows.c.follower_id)
            )
            created = made.first() is not None
            span.set_attribute("users.follow_created", created)
            if created:
                self.uow.emit(
                    UserFollowed(
                        follower_id=actor.user_id,
                        followee_id=command.user_id,
                        follower_name=follower.name,
                        follower_display_name=follower.display_name,
                        followed_at=now,
                    )
                )
            return created


@dataclass(frozen=True, slots=True)
class UnfollowUserCommand:
    actor: Principal
    user_id: uuid.UUID  # whom to stop following


@dataclass(frozen=True, slots=True)
class UnfollowUser:
    uow: UnitOfWork

    async def execute(self, command: UnfollowUserCommand) -> bool:
        """Whether a follow ended (False: the caller did not follow the user).

        A deactivated user can still be unfollowed: ending a follow harms nobody, and the
        follower's count should not keep someone they no longer want."""
        with tracer.start_as_current_span("users.unfollow") as span:
            actor = command.actor
            span.set_attribute("user.id", str(actor.user_id))
            span.set_attribute("users.target", str(command.user_id))
            _not_yourself(actor, command.user_id)
            removed = await self.uow.execute(
                delete(follows)
                .where(
                    follows.c.follower_id == actor.user_id,
                    follows.c.followee_id == command.user_id,
                )
                .returning(follows.c.follower_id)
            )
            ended = removed.first() is not None
            span.set_attribute("users.follow_ended", ended)
            if ended:
                self.uow.emit(
                    UserUnfollowed(
                        follower_id=actor.user_id,
                        followee_id=command.user_id,
                        unfollowed_at=utcnow(),
                    )
                )
                return True
            exists = (
                await self.uow.execute(select(users.c.id).where(users.c.id == command.user_id))
            ).first()
            if exists is None:
                raise UserNotFound()
            return False
