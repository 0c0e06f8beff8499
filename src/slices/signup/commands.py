"""`SignUp`: create a user account.

The password is hashed before the first statement (bcrypt never holds a database connection or
lock: the unit of work connects at its first write). Duplicates are refused twice over: a cheap
look-up before hashing, so a known address costs no bcrypt, and the unique constraints at
insert, so two racing signups for one address give exactly one 201 and 409s — never a 500.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from opentelemetry import trace
from prometheus_client import Counter
from sqlalchemy import insert, or_, select
from sqlalchemy.exc import IntegrityError

from src.core.db.uow import UnitOfWork, violated_unique
from src.core.errors.types import Conflict
from src.core.identity import Role
from src.core.security import PasswordHasher
from src.core.tables import users, utcnow
from src.slices.signup.errors import EmailTaken, PhoneTaken
from src.slices.signup.events import UserSignedUp

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class SignUpCommand:
    name: str
    email: str  # already normalized (lower-cased)
    password: str
    display_name: str | None = None
    phone_number: str | None = None
    country: str | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class SignUp:
    uow: UnitOfWork
    hasher: PasswordHasher
    outcomes: Counter  # signup_requests_total{status}
    role: Role = "creator"  # SIGNUP_ROLE: what a new account may do

    async def execute(self, command: SignUpCommand) -> UserSignedUp:
        try:
            created = await self._sign_up(command)
        except Conflict:
            self.outcomes.labels(status="duplicate").inc()
            raise
        except BaseException:
            self.outcomes.labels(status="error").inc()
            raise
        self.outcomes.labels(status="success").inc()
        return created

    async def _sign_up(self, command: SignUpCommand) -> UserSignedUp:
        with tracer.start_as_current_span("signup.execute") as span:
            user_id = uuid.uuid4()
            span.set_attribute("user.id", str(user_id))
            await self._refuse_known(command)
            password_hash = await self.hasher.hash(command.password)
            now = utcnow()
            created = UserSignedUp(
                user_id=user_id,
                name=command.name,
                email=command.email,
                phone_number=command.phone_number,
                display_name=command.display_name or command.name,
                country=command.country,
                state=command.state,
                role=self.role,
                created_at=now,
            )
            try:
                await self.uow.execute(
                    insert(users).values(
                        id=user_id,
                        name=created.name,
                        email=created.email,
                        phone_number=created.phone_number,
                        password_hash=password_hash,
                        country=created.country,
                        state=created.state,
                        display_name=created.display_name,
                        role=created.role,
                        created_at=now,
                        updated_at=now,
                    )
                )
            except IntegrityError as error:
                raise _conflict(error) from error
            self.uow.emit(created)
            return created

    async def _refuse_known(self, command: SignUpCommand) -> None:
        conditions = [users.c.email == command.email]
        if command.phone_number:
            conditions.append(users.c.phone_number == command.phone_number)
        async with self.uow.reader() as connection:
            rows = await connection.execute(
                select(users.c.email, users.c.phone_number).where(or_(*conditions)).limit(2)
            )
            matches = rows.all()
        if any(email == command.email for email, _ in matches):
            raise EmailTaken()
        if matches:
            raise PhoneTaken()


def _conflict(error: IntegrityError) -> Conflict | IntegrityError:
    if violated_unique(error, "users", "email"):
        return EmailTaken()
    if violated_unique(error, "users", "phone_number"):
        return PhoneTaken()
    return error
