"""Events the signup slice publishes; other slices may subscribe to them."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from src.core.events import DomainEvent
from src.core.identity import Role


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSignedUp(DomainEvent):
    user_id: uuid.UUID
    name: str
    email: str
    phone_number: str | None
    display_name: str
    country: str | None
    state: str | None
    role: Role
    created_at: dt.datetime
