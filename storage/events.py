"""Events members sign up for: places held by one conditional UPDATE, a waiting list past capacity.

Held by the database, not by a check in Python before a write:

- an event never confirms more people than its capacity: a place is taken by ONE conditional UPDATE
  (`taken < capacity`), and a CHECK on the table refuses anything else;
- a member has one sign-up per event (a unique constraint; the insert is ON CONFLICT DO NOTHING, so a
  second one is no row back, not an error that would end the turn);
- the waiting list is the event's `waiting` sign-ups in id order, and a promotion moves exactly the
  first of them with one conditional UPDATE (`status = 'waiting'`), so two turns never promote the same.

The rules (deadline, who may cancel, what is told to whom) are the service's (`bot.services.events`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import insert_for, per_dialect
from storage.schema import event_signups, events, members

CONFIRMED, WAITING, CANCELLED = "confirmed", "waiting", "cancelled"
ACTIVE = (CONFIRMED, WAITING)


@dataclass(frozen=True)
class Event:
    id: int
    title: str
    description: str
    station: str | None  # a profile station index ("0"), or None with `place`
    place: str | None
    starts_at: datetime
    signup_deadline: datetime
    capacity: int
    taken: int
    cancelled: bool
    created_by: str
    created_at: datetime

    @property
    def left(self) -> int:
        return 0 if self.cancelled else max(self.capacity - self.taken, 0)


@dataclass(frozen=True)
class SignUp:
    id: int
    event_id: int
    member_id: int
    status: str  # confirmed, waiting, cancelled
    created_at: datetime
    updated_at: datetime
    checked_in_at: datetime | None
    position: int | None = None  # on the waiting list (1 = next), when asked for


@dataclass(frozen=True)
class Counts:
    confirmed: int = 0
    waiting: int = 0
    checked_in: int = 0


@dataclass(frozen=True)
class ListedSignUp:
    """A line of the staff's sign-up list: who, and where they stand."""

    signup: SignUp
    member_number: str
    name: str


def _event(m: Any) -> Event:
    return Event(**{c.name: m[c.name] for c in events.columns if c.name != "cancelled"}, cancelled=bool(m["cancelled"]))


def _signup(m: Any) -> SignUp:
    return SignUp(**{c.name: m[c.name] for c in event_signups.columns})


_ADD = (
    insert(events)
    .values(
        title=bindparam("e_title"),
        description=bindparam("e_description"),
        station=bindparam("e_station"),
        place=bindparam("e_place"),
        starts_at=bindparam("e_starts"),
        signup_deadline=bindparam("e_deadline"),
        capacity=bindparam("e_capacity"),
        taken=0,
        cancelled=False,
        created_by=bindparam("e_by"),
        created_at=bindparam("e_now"),
    )
    .returning(*events.c)
)
_GET = select(events).where(events.c.id == bindparam("event_id"))
_UPCOMING = (
    select(events)
    .where(events.c.cancelled.is_(False), events.c.starts_at > bindparam("since"))
    .order_by(events.c.starts_at, events.c.id)
)
_ALL = select(events).order_by(events.c.starts_at, events.c.id)
_ALL_SINCE = select(events).where(events.c.starts_at > bindparam("since")).order_by(events.c.starts_at, events.c.id)
# The place: taken and given back by one conditional statement each (no read first).
_TAKE_PLACE = (
    update(events)
    .where(events.c.id == bindparam("event_id"), events.c.taken < events.c.capacity, events.c.cancelled.is_(False))
    .values(taken=events.c.taken + 1)
    .returning(*events.c)
)
_FREE_PLACE = (
    update(events)
    .where(events.c.id == bindparam("event_id"), events.c.taken > 0)
    .values(taken=events.c.taken - 1)
    .returning(*events.c)
)
_CANCEL = (
    update(events)
    .where(events.c.id == bindparam("event_id"), events.c.cancelled.is_(False))
    .values(cancelled=True)
    .returning(*events.c)
)


def _insert_signup(dialect: str):  # type: ignore[no-untyped-def]
    stmt = insert_for(dialect, event_signups).values(
        event_id=bindparam("s_event"),
        member_id=bindparam("s_member"),
        status=bindparam("s_status"),
        created_at=bindparam("s_now"),
        updated_at=bindparam("s_now"),
        checked_in_at=None,
    )
    return stmt.on_conflict_do_nothing(index_elements=["event_id", "member_id"]).returning(*event_signups.c)


_INSERT_SIGNUP = per_dialect(_insert_signup)
# A member who cancelled and signs up again goes to the back: the old row goes, a new id comes.
_FORGET_CANCELLED = delete(event_signups).where(
    event_signups.c.event_id == bindparam("event_id"),
    event_signups.c.member_id == bindparam("member_id"),
    event_signups.c.status == CANCELLED,
)
_SIGNUP = select(event_signups).where(
    event_signups.c.event_id == bindparam("event_id"), event_signups.c.member_id == bindparam("member_id")
)
_SET_STATUS = (
    update(event_signups)
    .where(event_signups.c.id == bindparam("signup_id"), event_signups.c.status == bindparam("s_from"))
    .values(status=bindparam("s_to"), updated_at=bindparam("s_now"))
    .returning(*event_signups.c)
)
_first_waiting = (
    select(event_signups.c.id)
    .where(event_signups.c.event_id == bindparam("s_event"), event_signups.c.status == WAITING)
    .order_by(event_signups.c.id)
    .limit(1)
    .scalar_subquery()
)
_PROMOTE_FIRST = (
    update(event_signups)
    .where(event_signups.c.id == _first_waiting, event_signups.c.status == WAITING)
    .values(status=CONFIRMED, updated_at=bindparam("s_now"))
    .returning(*event_signups.c)
)
_POSITION = select(func.count()).where(
    event_signups.c.event_id == bindparam("event_id"),
    event_signups.c.status == WAITING,
    event_signups.c.id <= bindparam("signup_id"),
)
_CHECK_IN = (
    update(event_signups)
    .where(
        event_signups.c.id == bindparam("signup_id"),
        event_signups.c.status == CONFIRMED,
        event_signups.c.checked_in_at.is_(None),
    )
    .values(checked_in_at=bindparam("s_now"))
    .returning(*event_signups.c)
)
_COUNTS = (
    select(
        event_signups.c.status,
        func.count().label("n"),
        func.count(event_signups.c.checked_in_at).label("checked_in"),
    )
    .where(event_signups.c.event_id == bindparam("event_id"))
    .group_by(event_signups.c.status)
)
_ACTIVE_OF = (
    select(event_signups)
    .where(event_signups.c.event_id == bindparam("event_id"), event_signups.c.status.in_(ACTIVE))
    .order_by(event_signups.c.id)
)
_CONFIRMED_OF = (
    select(event_signups)
    .where(event_signups.c.event_id == bindparam("event_id"), event_signups.c.status == CONFIRMED)
    .order_by(event_signups.c.id)
)
_LISTED = (
    select(*event_signups.c, members.c.member_number.label("m_number"), members.c.name.label("m_name"))
    .join_from(event_signups, members, event_signups.c.member_id == members.c.id)
    .where(event_signups.c.event_id == bindparam("event_id"))
    .order_by(event_signups.c.id)
)
_FOR_MEMBER = (
    select(*event_signups.c, *(c.label(f"e_{c.name}") for c in events.c))
    .join_from(event_signups, events, event_signups.c.event_id == events.c.id)
    .where(
        event_signups.c.member_id == bindparam("member_id"),
        event_signups.c.status.in_(ACTIVE),
        events.c.starts_at > bindparam("since"),
    )
    .order_by(events.c.starts_at, events.c.id)
)


class Events:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # -- events -------------------------------------------------------------------------------------
    async def add(
        self,
        *,
        title: str,
        description: str,
        station: str | None,
        place: str | None,
        starts_at: datetime,
        signup_deadline: datetime,
        capacity: int,
        created_by: str,
        now: datetime,
    ) -> Event:
        params = {
            "e_title": title,
            "e_description": description,
            "e_station": station,
            "e_place": place,
            "e_starts": starts_at,
            "e_deadline": signup_deadline,
            "e_capacity": capacity,
            "e_by": created_by,
            "e_now": now,
        }
        return _event((await self.conn.execute(_ADD, params)).one()._mapping)

    async def get(self, event_id: int) -> Event | None:
        row = (await self.conn.execute(_GET, {"event_id": event_id})).first()
        return _event(row._mapping) if row else None

    async def upcoming(self, since: datetime) -> list[Event]:
        """Events not cancelled starting after `since`, soonest first."""
        return [_event(r._mapping) for r in await self.conn.execute(_UPCOMING, {"since": since})]

    async def all(self, *, since: datetime | None = None) -> list[Event]:
        """Every event (cancelled ones too), soonest first; with `since`, those starting after it."""
        if since is None:
            rows = await self.conn.execute(_ALL)
        else:
            rows = await self.conn.execute(_ALL_SINCE, {"since": since})
        return [_event(r._mapping) for r in rows]

    async def take_place(self, event_id: int) -> Event | None:
        """Take one place; None when none is left (or the event is cancelled or unknown)."""
        row = (await self.conn.execute(_TAKE_PLACE, {"event_id": event_id})).first()
        return _event(row._mapping) if row else None

    async def free_place(self, event_id: int) -> Event | None:
        row = (await self.conn.execute(_FREE_PLACE, {"event_id": event_id})).first()
        return _event(row._mapping) if row else None

    async def cancel(self, event_id: int) -> Event | None:
        """Call the event off; None when it already was, or is unknown."""
        row = (await self.conn.execute(_CANCEL, {"event_id": event_id})).first()
        return _event(row._mapping) if row else None

    # -- sign-ups -----------------------------------------------------------------------------------
    async def insert_signup(self, event_id: int, member_id: int, status: str, now: datetime) -> SignUp | None:
        """A new sign-up in `status`; None when the member already holds an active one for the event."""
        await self.conn.execute(_FORGET_CANCELLED, {"event_id": event_id, "member_id": member_id})
        params = {"s_event": event_id, "s_member": member_id, "s_status": status, "s_now": now}
        row = (await self.conn.execute(_INSERT_SIGNUP(self.conn), params)).first()
        return _signup(row._mapping) if row else None

    async def signup(self, event_id: int, member_id: int) -> SignUp | None:
        row = (await self.conn.execute(_SIGNUP, {"event_id": event_id, "member_id": member_id})).first()
        return _signup(row._mapping) if row else None

    async def set_status(self, signup_id: int, from_status: str, to_status: str, now: datetime) -> SignUp | None:
        """Move the sign-up from `from_status`; None when it is not in it any more (someone was first)."""
        params = {"signup_id": signup_id, "s_from": from_status, "s_to": to_status, "s_now": now}
        row = (await self.conn.execute(_SET_STATUS, params)).first()
        return _signup(row._mapping) if row else None

    async def promote_first(self, event_id: int, now: datetime) -> SignUp | None:
        """Confirm the first on the waiting list (the place it takes is the one just given up, so
        `taken` is left as it is); None when nobody waits."""
        row = (await self.conn.execute(_PROMOTE_FIRST, {"s_event": event_id, "s_now": now})).first()
        return _signup(row._mapping) if row else None

    async def position(self, signup: SignUp) -> int | None:
        """Where a waiting sign-up stands on the list (1 = next); None when it is not waiting."""
        if signup.status != WAITING:
            return None
        params = {"event_id": signup.event_id, "signup_id": signup.id}
        return int((await self.conn.execute(_POSITION, params)).scalar_one())

    async def check_in(self, signup_id: int, now: datetime) -> SignUp | None:
        """Mark a confirmed sign-up present; None when it is not confirmed or was checked in already."""
        row = (await self.conn.execute(_CHECK_IN, {"signup_id": signup_id, "s_now": now})).first()
        return _signup(row._mapping) if row else None

    async def counts(self, event_id: int) -> Counts:
        found = {r.status: (r.n, r.checked_in) for r in await self.conn.execute(_COUNTS, {"event_id": event_id})}
        confirmed = found.get(CONFIRMED, (0, 0))
        return Counts(confirmed=confirmed[0], waiting=found.get(WAITING, (0, 0))[0], checked_in=confirmed[1])

    async def active_of(self, event_id: int) -> list[SignUp]:
        """Confirmed and waiting sign-ups of the event, in the order they came."""
        return [_signup(r._mapping) for r in await self.conn.execute(_ACTIVE_OF, {"event_id": event_id})]

    async def confirmed_of(self, event_id: int) -> list[SignUp]:
        return [_signup(r._mapping) for r in await self.conn.execute(_CONFIRMED_OF, {"event_id": event_id})]

    async def listed(self, event_id: int) -> list[ListedSignUp]:
        """Every sign-up of the event with the member's number and name, in the order they came."""
        out = []
        for r in await self.conn.execute(_LISTED, {"event_id": event_id}):
            m = r._mapping
            out.append(ListedSignUp(_signup(m), m["m_number"], m["m_name"]))
        return out

    async def for_member(self, member_id: int, since: datetime) -> list[tuple[SignUp, Event]]:
        """The member's active sign-ups of events starting after `since`, soonest first."""
        out = []
        for r in await self.conn.execute(_FOR_MEMBER, {"member_id": member_id, "since": since}):
            m = r._mapping
            event = _event({c.name: m[f"e_{c.name}"] for c in events.c})
            out.append((_signup(m), event))
        return out
