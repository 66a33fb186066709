"""Markers of platform updates already processed, so a redelivered update has no second effect."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import insert_ignoring_conflicts, per_dialect
from storage.schema import processed_updates

_MARK = per_dialect(
    lambda name: insert_ignoring_conflicts(name, processed_updates, ["key"]).values(
        key=bindparam("key"), processed_at=bindparam("at"), reply=bindparam("reply")
    )
)


class Updates:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def mark(self, key: str, at: datetime, reply: str | None) -> bool:
        """Record `key` as processed; False when it already was (the caller then rolls back)."""
        parameters = {"key": key, "at": at, "reply": reply}
        return (await self.conn.execute(_MARK(self.conn), parameters)).rowcount == 1

    async def seen(self, key: str) -> tuple[bool, str | None]:
        row = (await self.conn.execute(select(processed_updates.c.reply).where(processed_updates.c.key == key))).first()
        return (row is not None, row.reply if row else None)

    async def forget(self, before: datetime) -> None:
        """Drop markers older than any platform's redelivery (Telegram keeps updates for 24 hours)."""
        await self.conn.execute(delete(processed_updates).where(processed_updates.c.processed_at < before))

    async def forget_replies(self, before: datetime) -> None:
        await self.conn.execute(
            update(processed_updates)
            .where(processed_updates.c.processed_at < before, processed_updates.c.reply.is_not(None))
            .values(reply=None)
        )
