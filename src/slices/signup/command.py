"""`SignUp`: create a user account.

The password is hashed before the transaction opens (bcrypt never holds a database
connection or lock). Duplicates are refused twice over: a cheap look-up before hashing, so a
known address costs no bcrypt, and the unique constraints at insert, so two racing signups
for one address give exactly one 201 and 409s — never a 500.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from opentelemetry import trace
from prometheus_client import Counter
from sqlalchemy import insert, or_, select
from sqlalchemy.exc import IntegrityError

from src.core.db import UnitOfWorkFactory, violated_unique
from src.core.errors import Conflict
from src.core.security import PasswordHasher
from src.core.tables import users, utcnow
from src.slices.signup.events import UserSignedUp
from src.slices.signup.schemas import SignUpRequest

tracer = trace.get_tracer(__name__)


class EmailTaken(Conflict):
    code, detail = "email_taken", "A user with this email already exists."


class PhoneTaken(Conflict):
    code, detail = "phone_taken", "A user with this phone number already exists."


@dataclass(frozen=True, slots=True)
class SignUp:
    unit_of_work: UnitOfWorkFactory
    hasher: PasswordHasher
    outcomes: Counter  # signup_requests_total{status}

    async def execute(self, command: SignUpRequest) -> UserSignedUp:
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

    async def _sign_up(self, command: SignUpRequest) -> UserSignedUp:
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
                role="user",
                created_at=now,
            )
            async with self.unit_of_work() as uow:
                try:
                    await uow.execute(
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
                    uow.emit(created)
                    await uow.commit()
                except IntegrityError as error:
                    raise _conflict(error) from error
            return created

    async def _refuse_known(self, command: SignUpRequest) -> None:
        conditions = [users.c.email == command.email]
        if command.phone_number:
            conditions.append(users.c.phone_number == command.phone_number)
        async with self.unit_of_work().reader() as connection:
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
