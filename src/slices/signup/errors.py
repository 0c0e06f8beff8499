"""Errors of the signup slice."""

from __future__ import annotations

from src.core.errors.types import Conflict


class EmailTaken(Conflict):
    code, detail = "email_taken", "A user with this email already exists."


class PhoneTaken(Conflict):
    code, detail = "phone_taken", "A user with this phone number already exists."
