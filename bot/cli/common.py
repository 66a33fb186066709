"""What every command group shares: the settings, running a coroutine, and opening the bot for one
transaction.

Every `gigunion` command pays for what this package imports before it can even print its help, so
modules here import only typer and the standard library at the top; a command imports the bot (and
through it SQLAlchemy, Alembic, the channel libraries) inside its own body, when it runs.
`tests/test_cli.py` checks that building the app leaves the heavy libraries unimported.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from bot.config import Settings, UnionProfile
    from bot.services.crypto import Keyring
    from storage import Database, Tx

T = TypeVar("T")

# A copy of `storage.staff.ROLES` for help texts: importing `storage` loads SQLAlchemy and Alembic.
# tests/test_cli.py fails when the two differ.
ROLES = ("admin", "claims", "counsellor", "complaints", "broadcaster")

_state: dict[str, Settings] = {}


def configure(
    config: Annotated[str | None, typer.Option("--config", help="TOML settings file (or GIGUNION_CONFIG).")] = None,
) -> None:
    """The options of `gigunion` itself, read before any command runs."""
    from bot.config import load_settings

    settings = load_settings(config)
    _state["settings"] = settings
    from bot.logging_setup import configure_logging

    configure_logging(settings.log_level)


def settings() -> Settings:
    return _state["settings"]


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


def user_key(identity: str) -> str:
    """CHANNEL:ID as typed by a union officer, checked."""
    channel, _, uid = identity.partition(":")
    if channel not in ("telegram", "wechat", "console") or not uid:
        raise typer.BadParameter("write it as CHANNEL:ID, e.g. telegram:123456789 or wechat:oXYZ…")
    return identity


@dataclass(frozen=True)
class OpenBot:
    """The parts of a bot a command needs for its transaction: no flows, locale, channels or jobs."""

    settings: Settings
    db: Database
    keyring: Keyring
    # Opened without write access (a read-only file, folder or medium): nothing can be recorded.
    read_only: bool = False

    @property
    def profile(self) -> UnionProfile:
        return self.settings.profile

    def now(self) -> datetime:
        return datetime.now(UTC)


@asynccontextmanager
async def open_bot(settings: Settings, *, upgrade: bool = False, reading: bool = False) -> AsyncIterator[OpenBot]:
    """The database and the keys, without `bot.runtime.running_bot`'s housekeeping. Migrations run
    when `upgrade` is asked for, or when the schema is not the current one (a new folder, or a
    database left by an older version), so a command answers on a database it set up itself exactly
    as it did before; on a current database nothing but the command's own transaction runs.

    A `reading` command never makes a database or a key: with none it raises DatabaseProblem ("no
    database at PATH"). A SQLite file it may not write is opened read-only, leaving no -wal or -shm
    file behind (see `bot.cli.opening`)."""
    from bot.cli.opening import open_database
    from bot.services.secret_key import configured_key, open_keyring

    configured_key(settings)  # a bad key stops the command before a database is made for it
    db, read_only = await open_database(settings, upgrade=upgrade, reading=reading)
    try:
        keyring = await open_keyring(settings, db, may_create=not reading, read_only=read_only)
        yield OpenBot(settings=settings, db=db, keyring=keyring, read_only=read_only)
    finally:
        await db.close()


def in_transaction(work: Callable[[OpenBot, Tx], Awaitable[T]], *, reading: bool = False) -> T:
    """Open the bot, run `work` in one transaction (committed when it returns), close the bot. A
    `reading` command finds the database or stops (see `open_bot`)."""

    async def go() -> T:
        async with open_bot(settings(), reading=reading) as bot, bot.db.transaction() as tx:
            return await work(bot, tx)

    return run(go())


# `revision = "0002"` or `revision: str = "0002"` at the start of a line of a migration script.
_REVISION_LINE = re.compile(r"""^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(?:\(\s*)?["']([^"']+)["']""", re.M)


def head_revisions() -> frozenset[str]:
    """The newest migrations in storage/migrations/versions, read from the scripts' text: asking
    Alembic would cost every command the import of Alembic (about a third of a second)."""
    spec = find_spec("storage")  # finds the package without importing it
    assert spec is not None and spec.submodule_search_locations
    versions = Path(next(iter(spec.submodule_search_locations))) / "migrations" / "versions"
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in versions.glob("*.py"):
        for name, value in _REVISION_LINE.findall(script.read_text("utf-8")):
            (revisions if name == "revision" else parents).add(value)
    return frozenset(revisions - parents)


async def schema_is_current(db: Database) -> bool:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        async with db.engine.connect() as conn:
            applied = {row[0] for row in await conn.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:  # no such table: never migrated
        return False
    return applied == head_revisions()
