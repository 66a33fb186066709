"""What a failed `gigunion` command tells its operator: one or two lines on stderr saying what is wrong
and what to do, and an exit code a script can act on, instead of a traceback.

An error that is none of these is a bug, and keeps its traceback.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from bot.errors import EXIT_UNUSABLE, EXIT_USAGE

if TYPE_CHECKING:
    from bot.config import Settings

EXIT_CODES_HELP = (
    "Exit codes: 0 done (a card is genuine); 1 no (not genuine, not found, nothing to remove); "
    "2 a usage or configuration error; 3 the database or the key cannot be used."
)

# What to do about each kind of database fault (`storage.faults`); {db} is the database.
_FAULT_ADVICE = {
    "read-only": "{db} is read-only. Let the user running gigunion write to it and to its folder.",
    "locked": "{db} is locked by another process. Let it finish (or stop it), then try again.",
    "corrupt": "{db} is damaged or is not a database. Restore it from a backup, or move it away to start afresh.",
    "disk full": "The disk holding {db} is full. Free some space, then try again.",
    "I/O error": "Reading or writing {db} failed (an I/O error). Check the disk, then try again.",
    "cannot open": "{db} cannot be opened. Check that its folder exists and the user running gigunion may write there.",
    "unreachable": "{db} cannot be reached. Check that its server runs and that GIGUNION_DATABASE_URL is right.",
}


@contextmanager
def explained(settings: Settings | None = None) -> Iterator[None]:
    """Run a command; an error an operator can act on ends it with its lines and exit code."""
    try:
        yield
    except Exception as e:
        told = explain(e, settings or _settings())
        if told is None:
            raise
        message, code = told
        typer.echo(message, err=True)
        # A database thread may still report the failed connection to the event loop that has just
        # closed; its traceback would bury the two lines that matter.
        threading.excepthook = lambda _args: None
        sys.exit(code)


def explain(error: BaseException, settings: Settings | None) -> tuple[str, int] | None:
    """The operator's lines and the exit code for `error`, or None for a bug."""
    from bot.errors import StartupProblem

    if isinstance(error, BaseExceptionGroup):
        return next(filter(None, (explain(e, settings) for e in error.exceptions)), None)
    if isinstance(error, StartupProblem):
        return error.message, error.exit_code
    if _is_bad_database_url(error):
        return (
            "GIGUNION_DATABASE_URL is not a database address gigunion can use. "
            "Write sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DATABASE.",
            EXIT_USAGE,
        )
    if isinstance(error, OSError) and error.filename:  # a folder or file the bot keeps, not the database
        return (
            f"{error.filename}: {error.strerror or type(error).__name__}. "
            "Let the user running gigunion use it, or point gigunion at another folder.",
            EXIT_UNUSABLE,
        )
    from storage.faults import classify

    fault = classify(error)
    if fault is not None:
        return _FAULT_ADVICE[fault.kind].format(db=_database(settings)) + f" ({fault.code})", EXIT_UNUSABLE
    return None


def _is_bad_database_url(error: BaseException) -> bool:
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    return isinstance(error, ArgumentError | NoSuchModuleError)


def _database(settings: Settings | None) -> str:
    if settings is None:
        return "The database"
    path = settings.sqlite_path()
    if path is not None:
        return f"The database {path}"
    from sqlalchemy.engine import make_url

    try:  # never the password
        return f"The database {make_url(settings.database_url).render_as_string(hide_password=True)}"
    except Exception:
        return "The database"


def _settings() -> Settings | None:
    from bot.cli.common import _state

    return _state.get("settings")
