"""Events the users slice publishes; other slices may subscribe to them."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from src.core.events import DomainEvent
from src.core.identity import Role


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileUpdated(DomainEvent):
    """The profile as it now is, and which of its fields changed."""

    user_id: uuid.UUID
    name: str
    display_name: str
    phone_number: str | None
    country: str | None
    state: str | None
    updated_at: dt.datetime
    changed: frozenset[str]

    @property
    def renamed(self) -> bool:
        """Whether the names copied into other read models (content authors) changed."""
        return bool(self.changed & {"name", "display_name"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleChanged(DomainEvent):
    user_id: uuid.UUID
    role: Role
    changed_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UserDeactivated(DomainEvent):
    user_id: uuid.UUID
    changed_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UserReactivated(DomainEvent):
    user_id: uuid.UUID
    changed_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordChanged(DomainEvent):
    user_id: uuid.UUID
    changed_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UserFollowed(DomainEvent):
    """A follow that did not exist before (a repeated follow emits nothing). The follower's
    names are those they had then, for whatever tells the followed who it was."""

    follower_id: uuid.UUID
    followee_id: uuid.UUID
    follower_name: str
    follower_display_name: str
    followed_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class UserUnfollowed(DomainEvent):
    """A follow that existed has ended (unfollowing someone not followed emits nothing)."""

    follower_id: uuid.UUID
    followee_id: uuid.UUID
    unfollowed_at: dt.datetime
