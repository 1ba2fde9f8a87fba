"""Errors whose message is the whole story: a stage or command prints it as one line, without a traceback.

A bad param exits with status 2 (like a bad command-line option); any other of these with status 1."""
from __future__ import annotations


class VadError(Exception):
    """Base of the errors shown to users as one line."""

    exit_code = 1


class InputError(VadError, ValueError):
    """Input that a stage refuses to process: the message names the file and line (or the record id)."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where


class AccountingError(VadError, RuntimeError):
    """A stage's books do not balance: a record was lost or counted twice (a bug, never bad input)."""
