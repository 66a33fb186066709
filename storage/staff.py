"""Union staff: which channel identities may use the staff menu, and in what role."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import upsert
from storage.schema import staff

ROLES = ("admin", "claims", "counsellor", "complaints", "broadcaster")
ADMIN = "admin"  # may do everything any other role may
_GET = select(staff).where(staff.c.user_key == bindparam("user_key"))  # asked on every menu


@dataclass(frozen=True)
class Staffer:
    id: int
    user_key: str
    role: str
    name: str
    added_at: datetime

    @property
    def roles(self) -> frozenset[str]:
        # One role a row today; access asks for a set so tools need not change if a staffer ever holds more.
        return frozenset((self.role,))


def staffer_from(values: Mapping[str, Any]) -> Staffer:
    return Staffer(**{f.name: values[f.name] for f in fields(Staffer)})


class StaffRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, user_key: str, role: str, name: str, at: datetime) -> None:
        values = {"user_key": user_key, "role": role, "name": name, "added_at": at}
        await self.conn.execute(upsert(self.conn, staff, ["user_key"], values))

    async def get(self, user_key: str) -> Staffer | None:
        row = (await self.conn.execute(_GET, {"user_key": user_key})).first()
        return staffer_from(row._mapping) if row else None

    async def all(self) -> list[Staffer]:
        rows = await self.conn.execute(select(staff).order_by(staff.c.id))
        return [staffer_from(r._mapping) for r in rows]

    async def remove(self, user_key: str) -> bool:
        return (await self.conn.execute(delete(staff).where(staff.c.user_key == user_key))).rowcount > 0
