from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from src.core.identity import Role
from src.core.validation import NewPassword, OptionalLine100, PersonName, PhoneNumber


class UserPublic(BaseModel):
    """What anyone may see of a user: never the e-mail address or phone number."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    display_name: str
    country: str | None
    state: str | None
    content_count: int
    follower_count: int = Field(description="How many users follow this user.")
    following_count: int = Field(description="How many users this user follows.")
    created_at: dt.datetime


class ContentSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    title: str
    created_at: dt.datetime


class UserProfile(UserPublic):
    """A user's public profile with their newest content."""

    contents: list[ContentSummary]


class PrivateProfile(BaseModel):
    """The caller's own profile (or, for an admin, any user's): the signup answer plus
    `content_count`."""

    model_config = ConfigDict(from_attributes=True)

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


class UserPage(BaseModel):
    items: list[UserPublic]
    next_cursor: str | None


def _not_nullable(schema: dict[str, Any]) -> None:
    """Document an optional field as absent-or-a-value: `null` is refused (see below)."""
    schema.pop("default", None)
    variants = schema.pop("anyOf", [])
    schema.update(next((v for v in variants if v.get("type") != "null"), {}))


def _refuse_nulls(model: BaseModel, required: tuple[str, ...]) -> None:
    given = model.model_fields_set
    if not given:
        raise ValueError(f"give at least one of {', '.join(type(model).model_fields)}")
    for field in required:
        if field in given and getattr(model, field) is None:
            raise ValueError(f"{field} cannot be null")


class ProfileUpdate(BaseModel):
    """Any of the fields, with the signup rules; `null` clears an optional field (a cleared
    display name is the name again)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "minProperties": 1,
            "examples": [{"display_name": "Countess of Lovelace"}, {"phone_number": None}],
        },
    )

    # Absent means unchanged, but `null` is not a name.
    name: PersonName | None = Field(default=None, json_schema_extra=_not_nullable)
    display_name: OptionalLine100 | None = None
    phone_number: PhoneNumber | None = Field(default=None, description="E.164, e.g. +2348012345678")
    country: OptionalLine100 | None = None
    state: OptionalLine100 | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ProfileUpdate:
        _refuse_nulls(self, ("name",))
        return self


class PasswordChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"current_password": "the one you have", "new_password": "a better one"}]
        },
    )

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: NewPassword = Field(description="8 characters to 72 UTF-8 bytes")


class AdminUserUpdate(BaseModel):
    """Any of `role` and `is_active`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "minProperties": 1,
            "examples": [{"role": "viewer"}, {"is_active": False}],
        },
    )

    role: Role | None = Field(default=None, json_schema_extra=_not_nullable)
    is_active: bool | None = Field(default=None, json_schema_extra=_not_nullable)

    @model_validator(mode="after")
    def _something_to_change(self) -> AdminUserUpdate:
        _refuse_nulls(self, ("role", "is_active"))
        return self
