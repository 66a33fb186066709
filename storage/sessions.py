"""Conversation state per channel user: where they are in which flow, and what they have said so far."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import upsert
from storage.schema import sessions


@dataclass
class Session:
    user_key: str
    flow: str | None = None
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # The (label, payload) pairs last offered, so a typed number or label answers them on any channel.
    choices: list[list[str]] = field(default_factory=list)
    version: int = 0
    lang: str | None = None
    expires_at: datetime | None = None


class Sessions:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, user_key: str) -> Session | None:
        row = (await self.conn.execute(select(sessions).where(sessions.c.user_key == user_key))).first()
        if row is None:
            return None
        return Session(
            user_key=row.user_key,
            flow=row.flow,
            step=row.step,
            data=json.loads(row.data),
            choices=json.loads(row.choices),
            version=row.version,
            lang=row.lang,
            expires_at=row.expires_at,
        )

    async def save(self, s: Session) -> None:
        values = {
            "user_key": s.user_key,
            "flow": s.flow,
            "step": s.step,
            "data": json.dumps(s.data, ensure_ascii=False),
            "choices": json.dumps(s.choices, ensure_ascii=False),
            "version": s.version,
            "lang": s.lang,
            "expires_at": s.expires_at,
        }
        await self.conn.execute(upsert(self.conn, sessions, ["user_key"], values))

    async def delete(self, user_key: str) -> None:
        await self.conn.execute(delete(sessions).where(sessions.c.user_key == user_key))
