"""Events the users slice publishes."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from src.core.events import DomainEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleChanged(DomainEvent):
    user_id: uuid.UUID
    role: str
    changed_at: dt.datetime
