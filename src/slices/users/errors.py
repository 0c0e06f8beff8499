"""Errors of the users slice."""

from __future__ import annotations

from src.core.errors.types import Conflict, Forbidden, NotFound


class UserNotFound(NotFound):
    code, detail = "user_not_found", "No user has this id."


class PhoneTaken(Conflict):
    code, detail = "phone_taken", "A user with this phone number already exists."


class WrongPassword(Forbidden):
    code, detail = "wrong_password", "The current password is incorrect."
