"""Conversation state per channel user: where they are in which flow, and what they have said so far."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import per_dialect, upsert_statement
from storage.schema import identities, sessions


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
    # The member's identity was marked unreachable (they had blocked the bot): they are back now.
    was_unreachable: bool = False


# Built once: every turn runs these, and building a statement costs more than running it here.
_GET = select(sessions).where(sessions.c.user_key == bindparam("user_key"))
_SAVE = per_dialect(lambda d: upsert_statement(d, sessions, ["user_key"]))
_DELETE = delete(sessions).where(sessions.c.user_key == bindparam("user_key"))
# An expired conversation is wiped, not only skipped when its user writes again: it may hold what they
# had typed (encrypted personal details among it). Only a chosen language outlives it.
_PURGE_EXPIRED = delete(sessions).where(sessions.c.expires_at <= bindparam("now"), sessions.c.lang.is_(None))
_RESET_EXPIRED = (
    update(sessions)
    .where(sessions.c.expires_at <= bindparam("now"))
    .values(flow=None, step=None, data="{}", choices="[]", expires_at=None, version=sessions.c.version + 1)
)
# One encoder for every save: json.dumps with options makes a new one each call.
_JSON = json.JSONEncoder(ensure_ascii=False).encode
_REACHABLE = update(identities).where(identities.c.user_key == bindparam("key")).values(unreachable=False)


def session_from(values: Mapping[str, Any], was_unreachable: bool = False) -> Session:
    return Session(
        user_key=values["user_key"],
        flow=values["flow"],
        step=values["step"],
        data=json.loads(values["data"]),
        choices=json.loads(values["choices"]),
        version=values["version"],
        lang=values["lang"],
        expires_at=values["expires_at"],
        was_unreachable=was_unreachable,
    )


class Sessions:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, user_key: str) -> Session | None:
        """The session alone; a turn reads it with everything else it needs through `Turns.load`."""
        row = (await self.conn.execute(_GET, {"user_key": user_key})).first()
        return session_from(row._mapping) if row else None

    async def save(self, s: Session) -> None:
        values = {
            "user_key": s.user_key,
            "flow": s.flow,
            "step": s.step,
            "data": _JSON(s.data),
            "choices": _JSON(s.choices),
            "version": s.version,
            "lang": s.lang,
            "expires_at": s.expires_at,
        }
        await self.conn.execute(_SAVE(self.conn), values)
        if s.was_unreachable:
            await self.conn.execute(_REACHABLE, {"key": s.user_key})
            s.was_unreachable = False

    async def delete(self, user_key: str) -> None:
        await self.conn.execute(_DELETE, {"user_key": user_key})

    async def purge_expired(self, now: datetime) -> int:
        """Delete the conversations whose deadline has passed (keeping only a chosen language, as a
        session at home); how many there were."""
        deleted = (await self.conn.execute(_PURGE_EXPIRED, {"now": now})).rowcount
        return deleted + (await self.conn.execute(_RESET_EXPIRED, {"now": now})).rowcount
