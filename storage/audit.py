"""Who did what to which record, without personal data: actors are staff or channel keys, subjects
are member numbers. When a member leaves, their number in the rows about them is replaced by a
pseudonym (`pseudonymise`), so the trail of who looked them up outlives the member without naming them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
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
_ABOUT = select(audit_log).where(audit_log.c.subject == bindparam("subject")).order_by(audit_log.c.id)
_RENAME_SUBJECT = (
    update(audit_log).where(audit_log.c.subject == bindparam("subject")).values(subject=bindparam("pseudonym"))
)


class Audit:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def record(self, at: datetime, actor: str, action: str, subject: str | None = None) -> None:
        await self.conn.execute(_RECORD, {"at": at, "actor": actor, "action": action, "subject": subject})

    async def entries(self, limit: int = 100) -> list[AuditEntry]:
        rows = await self.conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
        return [AuditEntry(r.at, r.actor, r.action, r.subject) for r in rows]

    async def about(self, subject: str) -> list[AuditEntry]:
        """Everything done to one record, oldest first: "who looked at my data"."""
        rows = await self.conn.execute(_ABOUT, {"subject": subject})
        return [AuditEntry(r.at, r.actor, r.action, r.subject) for r in rows]

    async def pseudonymise(self, subject: str, pseudonym: str) -> None:
        """The rows about `subject` kept, with `pseudonym` in its place."""
        await self.conn.execute(_RENAME_SUBJECT, {"subject": subject, "pseudonym": pseudonym})
