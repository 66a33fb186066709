"""Problems that stop the bot before it can serve anyone.

A start-up problem is the operator's to fix (a bad setting, a missing key, a database that cannot be
opened), so it carries a sentence written for them and the exit code scripts can tell apart. The CLI
prints the message and exits; it never shows a traceback for one of these.
"""

from __future__ import annotations

#: Exit codes the `gigunion` command promises (documented in `--help` and the README).
EXIT_OK = 0
EXIT_NO = 1
EXIT_USAGE = 2
EXIT_UNUSABLE = 3


class StartupProblem(Exception):
    """Something the operator must fix before the bot can start."""

    exit_code: int = EXIT_UNUSABLE

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigProblem(StartupProblem):
    """A setting, option or config file is wrong (exit code 2)."""

    exit_code = EXIT_USAGE


class DatabaseProblem(StartupProblem):
    """The database cannot be opened or used (exit code 3)."""

    exit_code = EXIT_UNUSABLE


class KeyProblem(StartupProblem):
    """The secret key is missing, unusable or not the one the database was written under (exit code 3)."""

    exit_code = EXIT_UNUSABLE
