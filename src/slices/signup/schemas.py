from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from src.core.security import BCRYPT_MAX_BYTES
from src.core.validation import EmailAddress, EmptyIsNull, OptionalLine100, PersonName, SingleLine

PhoneNumber = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^(\+[0-9]{8,15})?$"),
    SingleLine,
    EmptyIsNull,
]


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
    password: str = Field(min_length=8, description="8 characters to 72 UTF-8 bytes")
    display_name: OptionalLine100 | None = Field(
        default=None, description="Shown instead of the name; empty or absent means the name"
    )
    phone_number: PhoneNumber | None = Field(default=None, description="E.164, e.g. +2348012345678")
    country: OptionalLine100 | None = None
    state: OptionalLine100 | None = None

    @field_validator("password")
    @classmethod
    def _bcrypt_limits(cls, value: str) -> str:
        try:
            encoded = value.encode()
        except UnicodeEncodeError as error:
            raise ValueError("must be valid Unicode text") from error
        if len(encoded) > BCRYPT_MAX_BYTES:
            raise ValueError("must be at most 72 bytes when encoded as UTF-8")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class SignUpResponse(BaseModel):
    id: uuid.UUID
    name: str
    email: str
    display_name: str
    phone_number: str | None
    country: str | None
    state: str | None
    role: str
    created_at: dt.datetime
