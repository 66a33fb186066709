"""Short-lived platform credentials (the WeChat access token) shared by every process of the bot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import insert_for, upsert
from storage.schema import platform_tokens


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: datetime


class Tokens:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, name: str) -> Token | None:
        row = (await self.conn.execute(select(platform_tokens).where(platform_tokens.c.name == name))).first()
        return Token(row.value, row.expires_at) if row else None

    async def take_lease(self, name: str, owner: str, now: datetime, until: datetime) -> bool:
        """Hold the row `name` for `owner` until `until`, unless someone else holds it past `now`: one
        statement, so two processes asking at once cannot both get it (on PostgreSQL as on SQLite)."""
        stmt = insert_for(self.conn, platform_tokens).values(name=name, value=owner, expires_at=until)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": owner, "expires_at": until},
            where=(platform_tokens.c.expires_at <= now) | (platform_tokens.c.value == owner),
        ).returning(platform_tokens.c.name)
        return (await self.conn.execute(stmt)).first() is not None

    async def put(self, name: str, value: str, expires_at: datetime) -> None:
        values = {"name": name, "value": value, "expires_at": expires_at}
        await self.conn.execute(upsert(self.conn, platform_tokens, ["name"], values))
