"""N members racing for M consultation slots on SQLite, beside the raw speed of a durable SQLite commit.

Each member talks to the bot through the dispatcher (console channel) as a rider would: 预约咨询, the
kind, a day and a time picked at random among those offered, the way to talk, no topic, confirm. When
the time was just taken, the bot offers the next free times and the rider picks again. All members
start at once, so most taps race others for the same places.

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
import itertools
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
from bot.engine.messages import Incoming, Kind, Outgoing
from bot.runtime import running_bot
from storage.bookings import BOOKED
from storage.members import NewMember
from storage.schema import bookings, slots

KIND, KIND_LABEL = "legal", "法律咨询"
# Words of the member's booking flow (locales/zh_CN/book.toml) this rider looks for.
CONFIRM, SKIP_TOPIC, MODES = "确认预约", "不写了", ("到站点面谈", "打电话", "视频通话")
OTHER_DAY = "换一天"
NAVIGATION = (OTHER_DAY, "换一种", "返回", "页", "菜单", "取消", "不约了")


async def main(members_n: int, slots_n: int, capacity: int, raw_seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="gigunion-booking-bench-"))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder / 'gigunion.db'}",
        secret_key="bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        home=str(folder),
    )
    raw = Raw(folder / "raw.db", raw_seconds)
    await raw.measure()
    async with running_bot(settings, run_jobs=False) as (app, dispatcher):
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
                await tx.members.link(f"console:b{i}", member.id, now)
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
        turns: list[float] = []
        attempts = taken = gave_up = 0
        updates = itertools.count()

        async def send(u: int, kind: Kind, **fields: str) -> Outgoing:
            incoming = Incoming(channel="console", user_id=f"b{u}", kind=kind, dedupe_key=f"u{next(updates)}", **fields)
            t0 = time.perf_counter()
            [out] = await dispatcher.handle(incoming)
            turns.append(time.perf_counter() - t0)
            return out

        def button(out: Outgoing, label: str) -> str:
            return next(b.payload for b in out.buttons if label in b.label)

        async def member_books(u: int) -> None:
            # What a rider does: open booking, pick the kind, then a day and a time at random among those
            # offered (a "just taken" answer offers others), take the first way to talk, skip the topic,
            # confirm. Many riders tap the same few places at once.
            nonlocal attempts, taken, gave_up
            rng = random.Random(u)
            t0 = time.perf_counter()
            out = await send(u, Kind.TEXT, text="预约咨询")
            out = await send(u, Kind.BUTTON, payload=button(out, KIND_LABEL))
            for _ in range(60):
                labels = [b.label for b in out.buttons]
                if "约好了" in out.text:
                    confirm.append(time.perf_counter() - t0)
                    return
                if "还没有空位" in out.text:  # every place of the kind is booked
                    gave_up += 1
                    return
                if "刚刚被别人约走了" in out.text or "约不上了" in out.text:
                    taken += 1
                if any(CONFIRM in label for label in labels):
                    attempts += 1
                    out = await send(u, Kind.BUTTON, payload=button(out, CONFIRM))
                elif KIND_LABEL in labels:  # asked for the kind again: the same one
                    out = await send(u, Kind.BUTTON, payload=button(out, KIND_LABEL))
                elif SKIP_TOPIC in labels:
                    out = await send(u, Kind.BUTTON, payload=button(out, SKIP_TOPIC))
                elif any(label.startswith(MODES) for label in labels):
                    out = await send(u, Kind.BUTTON, payload=out.buttons[0].payload)
                else:
                    offered = [b for b in out.buttons if not any(word in b.label for word in NAVIGATION)]
                    if not offered and any(OTHER_DAY in label for label in labels):  # that day filled up
                        out = await send(u, Kind.BUTTON, payload=button(out, OTHER_DAY))
                        continue
                    if not offered:  # nothing left to book
                        gave_up += 1
                        return
                    out = await send(u, Kind.BUTTON, payload=rng.choice(offered).payload)
            raise SystemExit(f"member {u} went round in circles: {out.text[:80]!r}")

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
    rate = len(turns) / wall
    print(f"turns per second (through the dispatcher): {rate:8.0f} /s   = {rate / raw.rate:.2f} x raw")
    print(f"turn latency p50 / p99:                   {pct(turns, 50) * 1000:8.1f} / {pct(turns, 99) * 1000:.1f} ms")
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
