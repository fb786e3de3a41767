"""Errors that are a user's mistake: shown as a message, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a bad request: the message says what is wrong and how to fix it."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
