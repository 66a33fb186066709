"""Applies the Alembic migrations in `storage/migrations` to a database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from storage.db import Database

MIGRATIONS = Path(__file__).with_name("migrations")


def _run(action):  # type: ignore[no-untyped-def]
    def run(sync_conn) -> None:  # type: ignore[no-untyped-def]
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = sync_conn
        action(cfg)

    return run


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(_run(lambda cfg: command.upgrade(cfg, revision)))


async def new_revision(db: Database, message: str) -> None:
    """Writes a migration for the difference between `storage.schema` and the database."""
    async with db.engine.begin() as conn:
        await conn.run_sync(_run(lambda cfg: command.revision(cfg, message=message, autogenerate=True)))
