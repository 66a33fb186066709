"""N members racing for M consultation slots on SQLite, beside the raw speed of a durable SQLite commit.

Each member does what the booking flow does, as two turns: look at the free times of a kind (one turn),
tap one at random, and book it (`bot.services.booking.book` in `Database.run_turn`, the turn the "book"
flow commits at its confirm step); when it was just taken, look again and tap another, until booked
or nothing is left. All members start at once, so most taps race others for the same places.

The members go through the service in turns rather than through the dispatcher (the member's "book"
flow was being written beside this): the flow's steps before confirming only read, and this measures
the part that decides who gets a place.

Prints, measured in this run on this machine:
  1. raw: single-row commits through aiosqlite (bench/engine.py's `Raw`), before and after;
  2. bookings per second (wall time of the whole race), attempts and "just taken" answers;
  3. p50/p99 time to confirm: from a member's first look to their booking committed;
  4. double bookings, counted in the database: places booked beyond a slot's capacity, and members
     holding two overlapping bookings. Both must be 0.

    python bench/booking.py                          # 2,000 members, 200 slots of 4 places
    python bench/booking.py --members 500 --slots 20 --capacity 1
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from bench.engine import Raw, pct
from bot.config import Settings
from bot.runtime import running_bot
from bot.services import booking
from storage.bookings import BOOKED
from storage.members import NewMember
from storage.schema import bookings, slots

KIND = "legal"


async def main(members_n: int, slots_n: int, capacity: int, raw_seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="gigunion-booking-bench-"))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder / 'gigunion.db'}",
        secret_key="bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        home=str(folder),
    )
    raw = Raw(folder / "raw.db", raw_seconds)
    await raw.measure()
    async with running_bot(settings, run_jobs=False) as (app, _dispatcher):
        now = app.now()
        async with app.db.transaction() as tx:
            members = []
            for i in range(members_n):
                member = await tx.members.create(
                    NewMember(
                        f"HB2026{i:06d}", f"C{i:07d}", f"h{i}", "enc", "骑手", "美团", "delivery_rider", None, now
                    )
                )
                assert member is not None
                members.append(member)
            # Slots spread over the next days, 45 minutes apart, none overlapping another.
            first = now.replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
            await tx.bookings.add_slots(
                kind=KIND,
                counsellor="console:bench",
                station="phone",
                starts=[first + i * timedelta(minutes=45) for i in range(slots_n)],
                duration=timedelta(minutes=45),
                capacity=capacity,
                now=now,
            )

        confirm: list[float] = []
        attempts = taken = gave_up = 0

        async def look(tx, rng: random.Random):  # type: ignore[no-untyped-def]
            # As the flow shows them: the days with free times, then the times of the day tapped.
            days = await booking.free_days(tx, app, KIND, now)
            return await booking.free_times(tx, app, KIND, rng.choice(days), now) if days else []

        async def member_books(u: int) -> None:
            nonlocal attempts, taken, gave_up
            rng = random.Random(u)
            member = members[u]
            t0 = time.perf_counter()
            while True:
                free = await app.db.run_turn(lambda tx: look(tx, rng))
                if not free:
                    gave_up += 1
                    return
                choice = rng.choice(free).id

                async def tap(tx, slot_id: int = choice):  # type: ignore[no-untyped-def]
                    try:
                        return await booking.book(
                            tx, app, member, slot_id, mode="phone", station=None, topic=None, now=now
                        )
                    except booking.BookingRefused as e:
                        return e.reason

                attempts += 1
                outcome = await app.db.run_turn(tap)
                if not isinstance(outcome, str):
                    confirm.append(time.perf_counter() - t0)
                    return
                taken += outcome == "taken"

        started = time.perf_counter()
        await asyncio.gather(*(member_books(u) for u in range(members_n)))
        wall = time.perf_counter() - started

        async with app.db.transaction() as tx:
            per_slot = (
                select(slots.c.id, slots.c.capacity, func.count(bookings.c.id).label("n"))
                .join_from(slots, bookings, (bookings.c.slot_id == slots.c.id) & (bookings.c.status == BOOKED))
                .group_by(slots.c.id, slots.c.capacity)
            )
            over = sum(max(r.n - r.capacity, 0) for r in await tx.conn.execute(per_slot))
            a, b = bookings.alias("a"), bookings.alias("b")
            overlapping = (
                await tx.conn.execute(
                    select(func.count()).where(
                        a.c.member_id == b.c.member_id,
                        a.c.id < b.c.id,
                        a.c.status == BOOKED,
                        b.c.status == BOOKED,
                        a.c.start_at < b.c.end_at,
                        b.c.start_at < a.c.end_at,
                    )
                )
            ).scalar_one()
            total = (await tx.conn.execute(select(func.count()).where(bookings.c.status == BOOKED))).scalar_one()
    await raw.measure()

    places = slots_n * capacity
    print(f"members {members_n}, slots {slots_n} x {capacity} places = {places}; SQLite file, one process")
    print(f"raw commits (aiosqlite, one row each):   {raw.rate:8.0f} /s   ({raw.spread()})")
    print(f"bookings confirmed:                       {total:8d}   (members left without a place: {gave_up})")
    print(f"bookings per second:                      {total / wall:8.0f} /s   over {wall:.2f} s")
    print(f"booking attempts / 'just taken':          {attempts:8d} / {taken}")
    print(f"turns per second (looks + taps):          {(attempts + attempts + gave_up) / wall:8.0f} /s")
    print(
        f"time to confirm p50 / p99:                {pct(confirm, 50) * 1000:8.1f} / {pct(confirm, 99) * 1000:.1f} ms"
    )
    print(f"double bookings (over capacity):          {over:8d}")
    print(f"members holding overlapping bookings:     {overlapping:8d}")
    if over or overlapping or total != min(places, members_n):
        raise SystemExit("a place was booked twice or lost")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=4)
    parser.add_argument("--raw-seconds", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(main(args.members, args.slots, args.capacity, args.raw_seconds))
