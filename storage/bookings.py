"""Consultation times (slots) and members' bookings of them.

Two things are held by the database itself, not by a check in Python before a write:

- a slot never takes more people than its capacity: a place is taken by ONE conditional UPDATE
  (`booked < capacity`), and a CHECK on the table refuses anything else;
- a member never holds two overlapping active bookings: the booking is inserted by one
  INSERT … SELECT … WHERE NOT EXISTS (an active booking of that member overlapping it).

Both run in the caller's turn; turns are serializable (`storage.group_commit`, and SERIALIZABLE on
PostgreSQL), so two turns racing for the last place, or one member booking twice at once, end with one
winner whatever the number of processes. The rules of booking (notice, horizon, who may cancel) are the
service's (`bot.services.booking`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, Text, bindparam, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import insert_for, per_dialect
from storage.schema import UTCDateTime, bookings, slots

BOOKED, CANCELLED, NO_SHOW, DONE = "booked", "cancelled", "no_show", "done"
STATUSES = (BOOKED, CANCELLED, NO_SHOW, DONE)
REFERENCE_PREFIX = "YY"  # 预约
# No 0/O, 1/I/L: a reference is read off a phone screen and typed back.
REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
REFERENCE_LENGTH = 6


def new_reference() -> str:
    return REFERENCE_PREFIX + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


@dataclass(frozen=True)
class Slot:
    id: int
    kind: str
    counsellor: str  # staff user key
    station: str | None  # a profile station index ("0", "1"…), "phone" or "video"
    start_at: datetime
    end_at: datetime
    capacity: int
    booked: int
    cancelled: bool

    @property
    def free(self) -> int:
        return 0 if self.cancelled else max(self.capacity - self.booked, 0)


@dataclass(frozen=True)
class Booking:
    id: int
    reference: str
    slot_id: int
    member_id: int
    mode: str
    station: str | None
    topic_enc: str | None
    status: str
    rating: int | None
    start_at: datetime
    end_at: datetime
    created_at: datetime
    cancelled_by: str | None


_SLOT_FIELDS = ("id", "kind", "counsellor", "station", "start_at", "end_at", "capacity", "booked", "cancelled")


def _slot(m: Any) -> Slot:
    return Slot(**{f: m[f] for f in _SLOT_FIELDS[:-1]}, cancelled=bool(m["cancelled"]))


def _booking(m: Any) -> Booking:
    return Booking(**{c.name: m[c.name] for c in bookings.columns})


_ADD_SLOT = (
    insert(slots)
    .values(
        kind=bindparam("b_kind"),
        counsellor=bindparam("b_counsellor"),
        station=bindparam("b_station"),
        start_at=bindparam("b_start"),
        end_at=bindparam("b_end"),
        capacity=bindparam("b_capacity"),
        booked=0,
        cancelled=False,
        created_at=bindparam("b_now"),
    )
    .returning(*slots.c)
)
_SLOT = select(slots).where(slots.c.id == bindparam("slot_id"))
_FREE = (
    select(slots)
    .where(
        slots.c.kind == bindparam("kind_"),
        slots.c.cancelled.is_(False),
        slots.c.booked < slots.c.capacity,
        slots.c.start_at >= bindparam("since"),
        slots.c.start_at < bindparam("until"),
    )
    .order_by(slots.c.start_at, slots.c.id)
)
# The place: taken and given back by one conditional statement each (no read first).
_TAKE_PLACE = (
    update(slots)
    .where(slots.c.id == bindparam("slot_id"), slots.c.booked < slots.c.capacity, slots.c.cancelled.is_(False))
    .values(booked=slots.c.booked + 1)
    .returning(*slots.c)
)
_FREE_PLACE = (
    update(slots)
    .where(slots.c.id == bindparam("slot_id"), slots.c.booked > 0)
    .values(booked=slots.c.booked - 1)
    .returning(*slots.c)
)
_CANCEL_SLOT = (
    update(slots)
    .where(slots.c.id == bindparam("slot_id"), slots.c.cancelled.is_(False))
    .values(cancelled=True)
    .returning(*slots.c)
)

_NEW_BOOKING = {
    "reference": (String, "b_reference"),
    "slot_id": (Integer, "b_slot"),
    "member_id": (Integer, "b_member"),
    "mode": (String, "b_mode"),
    "station": (String, "b_station"),
    "topic_enc": (Text, "b_topic"),
    "status": (String, "b_status"),
    "rating": (Integer, "b_rating"),
    "start_at": (UTCDateTime, "b_start"),
    "end_at": (UTCDateTime, "b_end"),
    "created_at": (UTCDateTime, "b_now"),
    "cancelled_by": (String, "b_by"),
}


def _insert_booking(dialect: str):  # type: ignore[no-untyped-def]
    held = bookings.alias("held")
    overlapping = exists().where(
        held.c.member_id == bindparam("b_member2", type_=Integer()),
        held.c.status == BOOKED,
        held.c.start_at < bindparam("b_end2", type_=UTCDateTime()),
        held.c.end_at > bindparam("b_start2", type_=UTCDateTime()),
        # The booking a reschedule replaces does not stand in the way of its replacement.
        held.c.reference != bindparam("b_ignoring", type_=String()),
    )
    values = select(*(bindparam(name, type_=kind()) for kind, name in _NEW_BOOKING.values())).where(~overlapping)
    stmt = insert_for(dialect, bookings).from_select(list(_NEW_BOOKING), values)
    # A reference drawn twice is no error that would end the turn: no row back, and a new one is drawn.
    return stmt.on_conflict_do_nothing(index_elements=["reference"]).returning(*bookings.c)


_INSERT_BOOKING = per_dialect(_insert_booking)
_OVERLAP = select(bookings.c.id).where(
    bookings.c.member_id == bindparam("member_id"),
    bookings.c.status == BOOKED,
    bookings.c.start_at < bindparam("end_at"),
    bookings.c.end_at > bindparam("start_at"),
    bookings.c.reference != bindparam("ignoring"),
)
_BY_REFERENCE = select(bookings).where(bookings.c.reference == bindparam("reference_"))
_FOR_MEMBER = (
    select(bookings)
    .where(bookings.c.member_id == bindparam("member_id"))
    .order_by(bookings.c.start_at.desc(), bookings.c.id.desc())
)
_UPCOMING_FOR_MEMBER = (
    select(bookings)
    .where(
        bookings.c.member_id == bindparam("member_id"),
        bookings.c.status == BOOKED,
        bookings.c.end_at > bindparam("since"),
    )
    .order_by(bookings.c.start_at, bookings.c.id)
)
_SLOT_LABELS = [c.label(f"s_{c.name}") for c in slots.c]
_FOR_COUNSELLOR = (
    select(*bookings.c, *_SLOT_LABELS)
    .join_from(bookings, slots, bookings.c.slot_id == slots.c.id)
    .where(
        slots.c.counsellor == bindparam("counsellor_"),
        bookings.c.status == BOOKED,
        bookings.c.end_at > bindparam("since"),
    )
    .order_by(bookings.c.start_at, bookings.c.id)
)
_OF_SLOT = (
    select(bookings)
    .where(bookings.c.slot_id == bindparam("slot_id"), bookings.c.status == BOOKED)
    .order_by(bookings.c.id)
)
_ALL = select(bookings).order_by(bookings.c.start_at, bookings.c.id)
_ALL_WITH_STATUS = (
    select(bookings).where(bookings.c.status == bindparam("status_")).order_by(bookings.c.start_at, bookings.c.id)
)
_SET_STATUS = (
    update(bookings)
    .where(bookings.c.reference == bindparam("b_reference"), bookings.c.status == bindparam("b_from"))
    .values(status=bindparam("b_to"), cancelled_by=bindparam("b_by"))
    .returning(*bookings.c)
)
_RATE = (
    update(bookings)
    .where(bookings.c.reference == bindparam("b_reference"), bookings.c.status.in_([BOOKED, DONE]))
    .values(status=DONE, rating=bindparam("b_rating"))
    .returning(*bookings.c)
)


def _slots_query(since: bool, kind: bool, counsellor: bool) -> Any:
    query = select(slots).order_by(slots.c.start_at, slots.c.id)
    if since:
        query = query.where(slots.c.start_at >= bindparam("since"))
    if kind:
        query = query.where(slots.c.kind == bindparam("kind_"))
    if counsellor:
        query = query.where(slots.c.counsellor == bindparam("counsellor_"))
    return query


# One statement per combination of filters, built at import (there are eight).
_SLOTS = {(a, b, c): _slots_query(a, b, c) for a in (False, True) for b in (False, True) for c in (False, True)}
REFERENCE_DRAWS = 5


class Bookings:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # -- slots --------------------------------------------------------------------------------------
    async def add_slots(
        self,
        *,
        kind: str,
        counsellor: str,
        station: str | None,
        starts: Sequence[datetime],
        duration: timedelta,
        capacity: int,
        now: datetime,
    ) -> list[Slot]:
        """One slot per start time, each `duration` long with `capacity` places, none taken."""
        made = []
        for start in starts:
            params = {
                "b_kind": kind,
                "b_counsellor": counsellor,
                "b_station": station,
                "b_start": start,
                "b_end": start + duration,
                "b_capacity": capacity,
                "b_now": now,
            }
            made.append(_slot((await self.conn.execute(_ADD_SLOT, params)).one()._mapping))
        return made

    async def slot(self, slot_id: int) -> Slot | None:
        row = (await self.conn.execute(_SLOT, {"slot_id": slot_id})).first()
        return _slot(row._mapping) if row else None

    async def free_slots(self, kind: str, since: datetime, until: datetime) -> list[Slot]:
        """Slots of `kind` starting in [since, until) with a place left, not cancelled, soonest first."""
        rows = await self.conn.execute(_FREE, {"kind_": kind, "since": since, "until": until})
        return [_slot(r._mapping) for r in rows]

    async def slots(
        self, *, since: datetime | None = None, kind: str | None = None, counsellor: str | None = None
    ) -> list[Slot]:
        stmt = _SLOTS[(since is not None, kind is not None, counsellor is not None)]
        params = {"since": since, "kind_": kind, "counsellor_": counsellor}
        params = {k: v for k, v in params.items() if v is not None}
        return [_slot(r._mapping) for r in await self.conn.execute(stmt, params)]

    async def take_place(self, slot_id: int) -> Slot | None:
        """Take one place of the slot; None when there is none left (or the slot is cancelled or gone)."""
        row = (await self.conn.execute(_TAKE_PLACE, {"slot_id": slot_id})).first()
        return _slot(row._mapping) if row else None

    async def free_place(self, slot_id: int) -> Slot | None:
        row = (await self.conn.execute(_FREE_PLACE, {"slot_id": slot_id})).first()
        return _slot(row._mapping) if row else None

    async def cancel_slot(self, slot_id: int) -> Slot | None:
        """Withdraw the slot (no more bookings); None when it was already withdrawn or is unknown."""
        row = (await self.conn.execute(_CANCEL_SLOT, {"slot_id": slot_id})).first()
        return _slot(row._mapping) if row else None

    # -- bookings -----------------------------------------------------------------------------------
    async def insert_booking(
        self,
        *,
        slot: Slot,
        member_id: int,
        mode: str,
        station: str | None,
        topic_enc: str | None,
        now: datetime,
        ignoring: str | None = None,
    ) -> Booking | None:
        """A BOOKED booking of `slot` for the member, with a new reference; None when the member already
        holds an active booking overlapping it (other than `ignoring`, the one being replaced)."""
        stmt = _INSERT_BOOKING(self.conn)
        for _ in range(REFERENCE_DRAWS):
            params = {
                "b_reference": new_reference(),
                "b_slot": slot.id,
                "b_member": member_id,
                "b_mode": mode,
                "b_station": station,
                "b_topic": topic_enc,
                "b_status": BOOKED,
                "b_rating": None,
                "b_start": slot.start_at,
                "b_end": slot.end_at,
                "b_now": now,
                "b_by": None,
                "b_member2": member_id,
                "b_start2": slot.start_at,
                "b_end2": slot.end_at,
                "b_ignoring": ignoring or "",
            }
            row = (await self.conn.execute(stmt, params)).first()
            if row is not None:
                return _booking(row._mapping)
            if await self.overlaps(member_id, slot.start_at, slot.end_at, ignoring=ignoring):
                return None
        raise RuntimeError("no free booking reference after several draws")

    async def overlaps(self, member_id: int, start: datetime, end: datetime, *, ignoring: str | None = None) -> bool:
        params = {"member_id": member_id, "start_at": start, "end_at": end, "ignoring": ignoring or ""}
        return (await self.conn.execute(_OVERLAP, params)).first() is not None

    async def set_status(
        self, reference: str, from_status: str, to_status: str, *, by: str | None = None
    ) -> Booking | None:
        """Move the booking from `from_status`; None when it is not in it any more (someone was first)."""
        params = {"b_reference": reference, "b_from": from_status, "b_to": to_status, "b_by": by}
        row = (await self.conn.execute(_SET_STATUS, params)).first()
        return _booking(row._mapping) if row else None

    async def set_rating(self, reference: str, stars: int) -> Booking | None:
        row = (await self.conn.execute(_RATE, {"b_reference": reference, "b_rating": stars})).first()
        return _booking(row._mapping) if row else None

    async def by_reference(self, reference: str) -> Booking | None:
        row = (await self.conn.execute(_BY_REFERENCE, {"reference_": reference})).first()
        return _booking(row._mapping) if row else None

    async def for_member(self, member_id: int, *, upcoming_since: datetime | None = None) -> list[Booking]:
        """All the member's bookings, latest first; with `upcoming_since`, only the active ones not yet
        ended by then, soonest first."""
        if upcoming_since is None:
            rows = await self.conn.execute(_FOR_MEMBER, {"member_id": member_id})
        else:
            rows = await self.conn.execute(_UPCOMING_FOR_MEMBER, {"member_id": member_id, "since": upcoming_since})
        return [_booking(r._mapping) for r in rows]

    async def for_counsellor(self, counsellor: str, since: datetime) -> list[tuple[Booking, Slot]]:
        """The active bookings of this counsellor's slots not yet ended by `since`, soonest first."""
        rows = await self.conn.execute(_FOR_COUNSELLOR, {"counsellor_": counsellor, "since": since})
        out = []
        for r in rows:
            m = r._mapping
            out.append((_booking(m), _slot({f: m[f"s_{f}"] for f in _SLOT_FIELDS})))
        return out

    async def of_slot(self, slot_id: int) -> list[Booking]:
        """The active bookings of one slot."""
        return [_booking(r._mapping) for r in await self.conn.execute(_OF_SLOT, {"slot_id": slot_id})]

    async def all(self, *, status: str | None = None) -> list[Booking]:
        if status is None:
            rows = await self.conn.execute(_ALL)
        else:
            rows = await self.conn.execute(_ALL_WITH_STATUS, {"status_": status})
        return [_booking(r._mapping) for r in rows]
