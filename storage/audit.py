"""Who did what to which record, without personal data: actors are staff or channel keys, subjects
are member numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.schema import audit_log


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    subject: str | None


_RECORD = insert(audit_log).values(
    at=bindparam("at"), actor=bindparam("actor"), action=bindparam("action"), subject=bindparam("subject")
)


class Audit:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def record(self, at: datetime, actor: str, action: str, subject: str | None = None) -> None:
        await self.conn.execute(_RECORD, {"at": at, "actor": actor, "action": action, "subject": subject})

    async def entries(self, limit: int = 100) -> list[AuditEntry]:
        rows = await self.conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
        return [AuditEntry(r.at, r.actor, r.action, r.subject) for r in rows]

    async def forget_subject(self, subject: str) -> None:
        await self.conn.execute(delete(audit_log).where(audit_log.c.subject == subject))
