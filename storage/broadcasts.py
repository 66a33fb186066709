"""Broadcast notices and their frozen audiences, one row per recipient with its delivery state."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection


class Broadcasts:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
