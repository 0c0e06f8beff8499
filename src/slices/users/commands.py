"""Commands of the users slice: `PromoteAdmin` (used by `inkwell promote-admin`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from src.core.db.uow import UnitOfWork
from src.core.tables import users, utcnow
from src.slices.users.errors import UserNotFound
from src.slices.users.events import RoleChanged


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
        now = utcnow()
        await self.uow.execute(
            update(users).where(users.c.id == user_id).values(role="admin", updated_at=now)
        )
        self.uow.emit(RoleChanged(user_id=user_id, role="admin", changed_at=now))
