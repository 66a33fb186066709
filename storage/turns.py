"""What a turn starts from, read in one statement: the user's session, the member their identity
belongs to, their staff role, and whether this update was handled before. Four look-ups would be four
trips to the database on every turn."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.members import Member, member_from
from storage.schema import identities, members, processed_updates, sessions, staff
from storage.sessions import Session, session_from
from storage.staff import Staffer, staffer_from


@dataclass(frozen=True)
class TurnState:
    session: Session | None
    member: Member | None
    staffer: Staffer | None
    answered: bool = False  # this update was handled before
    answer: str | None = None  # what was answered then, while it is kept


_ME = select(bindparam("user_key", type_=String(128)).label("user_key")).subquery("me")
_LOAD = select(
    *(c.label(f"s_{c.name}") for c in sessions.c),
    identities.c.unreachable.label("i_unreachable"),
    *(c.label(f"m_{c.name}") for c in members.c),
    *(c.label(f"st_{c.name}") for c in staff.c),
    processed_updates.c.key.label("u_key"),
    processed_updates.c.reply.label("u_reply"),
).select_from(
    _ME.outerjoin(sessions, sessions.c.user_key == _ME.c.user_key)
    .outerjoin(identities, identities.c.user_key == _ME.c.user_key)
    .outerjoin(members, members.c.id == identities.c.member_id)
    .outerjoin(staff, staff.c.user_key == _ME.c.user_key)
    .outerjoin(processed_updates, processed_updates.c.key == bindparam("update_key", type_=String(64)))
)
# Other processes serving the same user (PostgreSQL deployments) wait here until this turn commits;
# on SQLite the turn's BEGIN IMMEDIATE already keeps every other writer out.
_LOCK_PG = text("SELECT pg_advisory_xact_lock(hashtextextended(:user_key, 0))")


def _positions(prefix: str) -> list[tuple[str, int]]:
    return [(c.name[len(prefix) :], i) for i, c in enumerate(_LOAD.selected_columns) if c.name.startswith(prefix)]


_SESSION, _MEMBER, _STAFF = _positions("s_"), _positions("m_"), _positions("st_")


def _columns(row, positions: list[tuple[str, int]]) -> dict:  # type: ignore[no-untyped-def]
    return {name: row[i] for name, i in positions}


class Turns:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def load(self, user_key: str, update_key: str | None) -> TurnState:
        """`update_key`: the update's dedupe marker key, to tell whether it was handled before."""
        if self.conn.dialect.name == "postgresql":
            await self.conn.execute(_LOCK_PG, {"user_key": user_key})
        row = (await self.conn.execute(_LOAD, {"user_key": user_key, "update_key": update_key})).one()
        s, m, st = _columns(row, _SESSION), _columns(row, _MEMBER), _columns(row, _STAFF)
        session = session_from(s, bool(row.i_unreachable)) if s["user_key"] is not None else None
        member = member_from(m) if m["id"] is not None else None
        staffer = staffer_from(st) if st["id"] is not None else None
        return TurnState(session, member, staffer, row.u_key is not None, row.u_reply)
