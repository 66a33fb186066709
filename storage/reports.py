"""Satisfaction-report figures, read from the anonymous reviews: aggregates only, never a single complaint."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection


class Reports:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
