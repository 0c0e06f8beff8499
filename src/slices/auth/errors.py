"""Errors of the auth slice."""

from __future__ import annotations

from src.core.errors.types import Forbidden


class AccountDisabled(Forbidden):
    code, detail = "account_disabled", "This account has been deactivated."
