from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from src.core.identity import Role
from src.core.validation import EmailAddress, NewPassword, OptionalLine100, PersonName, PhoneNumber


class SignUpRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Ada Lovelace",
                    "email": "ada@example.com",
                    "password": "correct horse battery",
                    "display_name": "Ada",
                    "phone_number": "+2348012345678",
                    "country": "United Kingdom",
                    "state": "London",
                }
            ]
        },
    )

    name: PersonName
    email: EmailAddress
    password: NewPassword = Field(description="8 characters to 72 UTF-8 bytes")
    display_name: OptionalLine100 | None = Field(
        default=None, description="Shown instead of the name; empty or absent means the name"
    )
    phone_number: PhoneNumber | None = Field(default=None, description="E.164, e.g. +2348012345678")
    country: OptionalLine100 | None = None
    state: OptionalLine100 | None = None


class SignUpResponse(BaseModel):
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
