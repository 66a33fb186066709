"""Anonymous complaints, their threads and history, and the anonymous review figures reports are made of."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection


class Complaints:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
