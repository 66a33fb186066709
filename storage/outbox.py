"""Messages to deliver later (decisions, reminders, broadcasts), with their delivery state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.schema import outbox

PENDING, SENDING, SENT, FAILED, UNREACHABLE = "pending", "sending", "sent", "failed", "unreachable"


@dataclass(frozen=True)
class OutboxItem:
    id: int
    user_key: str
    body: str
    status: str
    attempts: int


class Outbox:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, user_key: str, body: str, now: datetime) -> int:
        result = await self.conn.execute(
            insert(outbox)
            .values(user_key=user_key, body=body, status=PENDING, attempts=0, next_attempt_at=now, created_at=now)
            .returning(outbox.c.id)
        )
        return result.scalar_one()

    async def claim_due(self, channel: str, now: datetime, limit: int, stale_after: timedelta) -> list[OutboxItem]:
        """Take due messages for one channel and mark them as being sent. A message left 'sending'
        by a process that died is due again after `stale_after`: delivered at least once, never skipped."""
        due = (outbox.c.status == PENDING) & (outbox.c.next_attempt_at <= now)
        stuck = (outbox.c.status == SENDING) & (outbox.c.next_attempt_at <= now - stale_after)
        rows = (
            await self.conn.execute(
                select(outbox)
                .where(outbox.c.user_key.startswith(f"{channel}:"), due | stuck)
                .order_by(outbox.c.id)
                .limit(limit)
            )
        ).all()
        if rows:
            await self.conn.execute(
                update(outbox)
                .where(outbox.c.id.in_([r.id for r in rows]))
                .values(status=SENDING, attempts=outbox.c.attempts + 1, next_attempt_at=now)
            )
        return [OutboxItem(r.id, r.user_key, r.body, SENDING, r.attempts + 1) for r in rows]

    async def mark_sent(self, item_id: int, now: datetime) -> None:
        await self.conn.execute(
            update(outbox).where(outbox.c.id == item_id).values(status=SENT, sent_at=now, body=None, last_error=None)
        )

    async def retry_at(self, item_id: int, when: datetime, error: str) -> None:
        await self.conn.execute(
            update(outbox)
            .where(outbox.c.id == item_id)
            .values(status=PENDING, next_attempt_at=when, last_error=error[:200])
        )

    async def give_up(self, item_id: int, status: str, error: str) -> None:
        await self.conn.execute(
            update(outbox).where(outbox.c.id == item_id).values(status=status, body=None, last_error=error[:200])
        )

    async def counts(self) -> dict[str, int]:
        rows = await self.conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
        return {status: n for status, n in rows}

    async def status_of(self, item_id: int) -> str | None:
        row = (await self.conn.execute(select(outbox.c.status).where(outbox.c.id == item_id))).first()
        return row.status if row else None
