"""Events members sign up for: places held by one conditional UPDATE, a waiting list past capacity."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection


class Events:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
