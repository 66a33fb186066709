"""Opening the database for a command: made and migrated for one that writes; for one that only reads,
found (or "no database at PATH") and, when it may not be written, opened read-only.

A read-only SQLite connection to a WAL database makes -wal and -shm files beside it and, unable to
checkpoint, leaves them there; in a folder the bot may not write it cannot open the file at all. So a
clean database (no -wal) is opened `immutable`, which touches nothing but the file, and one a running bot
is writing (its -wal is there) is opened `mode=ro` beside that bot's own files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from bot.errors import DatabaseProblem

if TYPE_CHECKING:
    from bot.config import Settings
    from storage import Database


def may_write(path: Path) -> bool:
    """Whether the bot may write the SQLite file and make its -wal and -shm beside it. A file or folder
    without write permission bits counts as read-only even for root, who could write it anyway."""
    for p in (path, path.parent):
        if not os.access(p, os.W_OK) or not p.stat().st_mode & 0o222:
            return False
    return True


def read_only_uri(path: Path) -> str:
    target = quote(str(path.resolve()))
    if Path(f"{path}-wal").exists():
        return f"file:{target}?mode=ro"
    return f"file:{target}?mode=ro&immutable=1"


def no_database(where: str) -> DatabaseProblem:
    return DatabaseProblem(
        f"No database at {where}.\nStart the bot once (`gigunion console` or `gigunion serve`) to make it, or set"
        " GIGUNION_HOME (or GIGUNION_DATABASE_URL) to the folder that holds it; `gigunion where` shows where it looks."
    )


async def _any_revision(db: Database) -> bool:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        async with db.engine.connect() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).first() is not None
    except DBAPIError:
        return False


async def open_database(settings: Settings, *, upgrade: bool, reading: bool) -> tuple[Database, bool]:
    """The database, migrated as `bot.cli.common.open_bot` says, and whether it is read-only."""
    from bot.cli.common import schema_is_current
    from bot.services.secret_key import database_name
    from storage import Database

    path = settings.sqlite_path()
    uri = None
    if reading and path is not None:
        if not path.is_file():
            raise no_database(str(path))
        if not may_write(path):
            uri = read_only_uri(path)
    # One transaction needs no batching with others.
    db = Database(settings.database_url, group_commit=False, sqlite_uri=uri)
    try:
        current = await schema_is_current(db)
        if reading and not current:
            if not await _any_revision(db):
                raise no_database(database_name(settings))
            if uri is not None:
                raise DatabaseProblem(
                    f"The database {path} was made by an older version and cannot be upgraded: it is read-only.\n"
                    "Run `gigunion db upgrade` where it can be written."
                )
        if upgrade or not current:
            from storage import migrate

            await migrate.upgrade(db)
    except BaseException:
        await db.close()
        raise
    return db, uri is not None
