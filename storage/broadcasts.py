"""Broadcast notices and their frozen audiences, one row per recipient with its delivery state.

A broadcast's state moves by one conditional UPDATE each (`move`: WHERE state IN the states it may
leave), so a pause racing a cancel ends with one of them. Its audience is frozen at start into
`broadcast_recipients`, one row per member (the primary key holds it). A sender `claim`s due rows in
one statement (they become `sending`, with a lease), sends outside any transaction, and records each
result afterwards (`record`): a row is `sent` only once the platform has accepted it, so a sender
killed mid-send leaves its in-flight rows `sending`, due again on resume or when the lease has passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.schema import broadcast_recipients, broadcasts, identities, members, sessions

DRAFT, SCHEDULED, SENDING, PAUSED, DONE, CANCELLED = "draft", "scheduled", "sending", "paused", "done", "cancelled"
STATES = (DRAFT, SCHEDULED, SENDING, PAUSED, DONE, CANCELLED)
# A recipient row's status.
QUEUED, SENT, FAILED, UNREACHABLE = "queued", "sent", "failed", "unreachable"
ROW_STATUSES = (QUEUED, SENDING, SENT, FAILED, UNREACHABLE)
_INSERT_CHUNK = 2000


@dataclass(frozen=True)
class Broadcast:
    id: int
    created_by: str
    text: str
    media_id: str | None
    event_id: int | None
    segment: str  # JSON (bot.services.broadcasts.Segment)
    state: str
    version: int
    send_at: datetime | None
    recipients: int
    skipped_muted: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Recipient:
    broadcast_id: int
    member_id: int
    user_key: str
    lang: str
    status: str
    attempts: int


@dataclass(frozen=True)
class Candidate:
    """A member of a segment with one identity of theirs (a member with several comes once per identity)."""

    member_id: int
    muted: bool
    user_key: str
    unreachable: bool
    session_lang: str | None


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed row: `status` is SENT, FAILED, UNREACHABLE, or QUEUED (try again at `retry_at`)."""

    member_id: int
    status: str
    error: str | None = None
    retry_at: datetime | None = None


def _broadcast(m: Any) -> Broadcast:
    return Broadcast(**{c.name: m[c.name] for c in broadcasts.columns})


_GET = select(broadcasts).where(broadcasts.c.id == bindparam("b_id"))
_COUNTS = (
    select(broadcast_recipients.c.status, func.count())
    .where(broadcast_recipients.c.broadcast_id == bindparam("b_id"))
    .group_by(broadcast_recipients.c.status)
)
# Due: queued and its time come, or left `sending` past its lease (its sender died).
_DUE_IDS = (
    select(broadcast_recipients.c.member_id)
    .where(
        broadcast_recipients.c.broadcast_id == bindparam("b_id"),
        broadcast_recipients.c.status.in_([QUEUED, SENDING]),
        broadcast_recipients.c.next_attempt_at <= bindparam("now"),
        broadcast_recipients.c.user_key.like(bindparam("prefix")),
    )
    .order_by(broadcast_recipients.c.status, broadcast_recipients.c.next_attempt_at, broadcast_recipients.c.member_id)
    .limit(bindparam("n"))
)
# One statement: the outer WHERE repeats the test, so rows another sender took meanwhile are not taken
# twice; nothing is claimed unless the broadcast is being sent.
_CLAIM = (
    update(broadcast_recipients)
    .where(
        broadcast_recipients.c.broadcast_id == bindparam("b_id"),
        broadcast_recipients.c.member_id.in_(_DUE_IDS.scalar_subquery()),
        broadcast_recipients.c.status.in_([QUEUED, SENDING]),
        broadcast_recipients.c.next_attempt_at <= bindparam("now"),
        select(broadcasts.c.id).where(broadcasts.c.id == bindparam("b_id"), broadcasts.c.state == SENDING).exists(),
    )
    .values(status=SENDING, attempts=broadcast_recipients.c.attempts + 1, next_attempt_at=bindparam("lease"))
    .returning(*broadcast_recipients.c)
)
_MARK = (
    update(broadcast_recipients)
    .where(
        broadcast_recipients.c.broadcast_id == bindparam("b_id"),
        broadcast_recipients.c.member_id == bindparam("m_id"),
        broadcast_recipients.c.status == SENDING,
    )
    .values(
        status=bindparam("s"),
        error=bindparam("err"),
        sent_at=bindparam("at"),
        next_attempt_at=bindparam("next_at"),
    )
)
_REQUEUE = (
    update(broadcast_recipients)
    .where(
        broadcast_recipients.c.broadcast_id == bindparam("b_id"),
        broadcast_recipients.c.status == SENDING,
    )
    .values(status=QUEUED, next_attempt_at=bindparam("now"))
)
_NEXT_DUE = select(func.min(broadcast_recipients.c.next_attempt_at)).where(
    broadcast_recipients.c.broadcast_id == bindparam("b_id"),
    broadcast_recipients.c.status.in_([QUEUED, SENDING]),
    broadcast_recipients.c.user_key.like(bindparam("prefix")),
)
_INSERT_ROW = insert(broadcast_recipients)


class Broadcasts:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def create(
        self,
        *,
        created_by: str,
        text: str,
        segment: str,
        media_id: str | None,
        event_id: int | None,
        send_at: datetime | None,
        now: datetime,
    ) -> Broadcast:
        row = (
            await self.conn.execute(
                insert(broadcasts)
                .values(
                    created_by=created_by,
                    text=text,
                    media_id=media_id,
                    event_id=event_id,
                    segment=segment,
                    state=SCHEDULED if send_at else DRAFT,
                    version=0,
                    send_at=send_at,
                    recipients=0,
                    skipped_muted=0,
                    created_at=now,
                )
                .returning(*broadcasts.c)
            )
        ).one()
        return _broadcast(row._mapping)

    async def get(self, broadcast_id: int) -> Broadcast | None:
        row = (await self.conn.execute(_GET, {"b_id": broadcast_id})).first()
        return _broadcast(row._mapping) if row else None

    async def latest(self, limit: int = 50) -> list[Broadcast]:
        rows = await self.conn.execute(select(broadcasts).order_by(broadcasts.c.id.desc()).limit(limit))
        return [_broadcast(r._mapping) for r in rows]

    async def move(
        self, broadcast_id: int, from_states: Sequence[str], to_state: str, **values: Any
    ) -> Broadcast | None:
        """The one conditional UPDATE of a state change: None when the broadcast is in none of `from_states`."""
        row = (
            await self.conn.execute(
                update(broadcasts)
                .where(broadcasts.c.id == broadcast_id, broadcasts.c.state.in_(list(from_states)))
                .values(state=to_state, version=broadcasts.c.version + 1, **values)
                .returning(*broadcasts.c)
            )
        ).first()
        return _broadcast(row._mapping) if row else None

    # -- the audience ------------------------------------------------------------------------------
    async def candidates(
        self,
        *,
        platform: str | None,
        work_kind: str | None,
        station: str | None,
        joined_since: datetime | None,
    ) -> list[Candidate]:
        """Members matching the segment's member fields, each with every identity of theirs (reachable
        first, newest first) and that identity's chosen language; the language filter and the choice
        of one identity are the service's."""
        where = []
        if platform is not None:
            where.append(members.c.platform == platform)
        if work_kind is not None:
            where.append(members.c.work_kind == work_kind)
        if station is not None:
            where.append(members.c.source == station)
        if joined_since is not None:
            where.append(members.c.joined_at >= joined_since)
        query = (
            select(
                members.c.id,
                members.c.notices_muted,
                identities.c.user_key,
                identities.c.unreachable,
                sessions.c.lang,
            )
            .join(identities, identities.c.member_id == members.c.id)
            .outerjoin(sessions, sessions.c.user_key == identities.c.user_key)
            .where(and_(True, *where))
            .order_by(members.c.id, identities.c.unreachable, identities.c.linked_at.desc())
        )
        rows = await self.conn.execute(query)
        return [Candidate(r[0], bool(r[1]), r[2], bool(r[3]), r[4]) for r in rows]

    async def freeze(
        self,
        broadcast_id: int,
        rows: Iterable[tuple[int, str, str, bool]],
        now: datetime,
    ) -> None:
        """Insert the audience: (member id, user key, language, unreachable) once per member."""
        chunk: list[dict[str, Any]] = []
        for member_id, user_key, lang, unreachable in rows:
            chunk.append(
                {
                    "broadcast_id": broadcast_id,
                    "member_id": member_id,
                    "user_key": user_key,
                    "lang": lang,
                    "status": UNREACHABLE if unreachable else QUEUED,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "error": "unreachable" if unreachable else None,
                    "sent_at": None,
                }
            )
            if len(chunk) >= _INSERT_CHUNK:
                await self.conn.execute(_INSERT_ROW, chunk)
                chunk = []
        if chunk:
            await self.conn.execute(_INSERT_ROW, chunk)

    # -- delivery ----------------------------------------------------------------------------------
    async def claim(
        self, broadcast_id: int, channel: str, now: datetime, limit: int, lease: timedelta
    ) -> list[Recipient]:
        rows = await self.conn.execute(
            _CLAIM, {"b_id": broadcast_id, "now": now, "n": limit, "lease": now + lease, "prefix": f"{channel}:%"}
        )
        return [
            Recipient(r.broadcast_id, r.member_id, r.user_key, r.lang, r.status, r.attempts)
            for r in sorted(rows, key=lambda r: r.member_id)
        ]

    async def record(self, broadcast_id: int, outcomes: Sequence[Outcome], now: datetime) -> None:
        """The results of claimed rows, in one statement executed for each (rows no longer `sending`,
        e.g. requeued by a takeover and sent by another sender, are left as they are)."""
        if not outcomes:
            return
        await self.conn.execute(
            _MARK,
            [
                {
                    "b_id": broadcast_id,
                    "m_id": o.member_id,
                    "s": o.status,
                    "err": o.error,
                    "at": now if o.status == SENT else None,
                    "next_at": o.retry_at or now,
                }
                for o in outcomes
            ],
        )

    async def requeue_sending(self, broadcast_id: int, now: datetime) -> int:
        """Rows left `sending` (by a sender that stopped or died) due again now."""
        result = await self.conn.execute(_REQUEUE, {"b_id": broadcast_id, "now": now})
        return result.rowcount or 0

    async def release(self, broadcast_id: int, member_ids: Sequence[int], when: datetime) -> None:
        """Claimed rows that were never handed to the platform, back in the queue."""
        if not member_ids:
            return
        await self.conn.execute(
            update(broadcast_recipients)
            .where(
                broadcast_recipients.c.broadcast_id == broadcast_id,
                broadcast_recipients.c.member_id.in_(list(member_ids)),
                broadcast_recipients.c.status == SENDING,
            )
            .values(
                status=QUEUED,
                next_attempt_at=when,
                attempts=case((broadcast_recipients.c.attempts > 0, broadcast_recipients.c.attempts - 1), else_=0),
            )
        )

    async def next_due(self, broadcast_id: int, channel: str | None = None) -> datetime | None:
        prefix = f"{channel}:%" if channel else "%"
        return (await self.conn.execute(_NEXT_DUE, {"b_id": broadcast_id, "prefix": prefix})).scalar()

    async def counts(self, broadcast_id: int) -> dict[str, int]:
        return {s: n for s, n in await self.conn.execute(_COUNTS, {"b_id": broadcast_id})}

    async def channels(self, broadcast_id: int) -> list[str]:
        """The channels of the rows still to deliver."""
        rows = await self.conn.execute(
            select(broadcast_recipients.c.user_key).where(
                broadcast_recipients.c.broadcast_id == broadcast_id,
                broadcast_recipients.c.status.in_([QUEUED, SENDING]),
            )
        )
        return sorted({r[0].partition(":")[0] for r in rows})

    async def recipient(self, broadcast_id: int, member_id: int) -> Recipient | None:
        r = (
            await self.conn.execute(
                select(broadcast_recipients).where(
                    broadcast_recipients.c.broadcast_id == broadcast_id,
                    broadcast_recipients.c.member_id == member_id,
                )
            )
        ).first()
        return Recipient(r.broadcast_id, r.member_id, r.user_key, r.lang, r.status, r.attempts) if r else None
