"""How fast the engine handles turns on SQLite, beside the raw speed of a durable SQLite commit.

Prints, all measured in this one run on this machine:
  1. raw: single-row upserts, each its own commit, through aiosqlite on one connection (WAL,
     synchronous=NORMAL, as the bot uses): the reference every ratio is taken against. It is measured
     before and after the engine runs, in half-second windows, and printed with its spread: on a shared
     machine it moves by a factor of two or more from minute to minute. The same upserts made with
     sqlite3 on the calling thread are printed beside it (what SQLite itself allows);
  2. saturated: N simulated users (closed loop: each sends its next message when the answer to the
     previous one arrives) joining the union through the dispatcher: turns/s, p50/p99 turn latency;
  3. paced: the same N users with a think time between messages (riders type with a thumb), so the
     turn latency a user feels is measured below saturation.
Runs 2 and 3 are made with group commit (the default on SQLite) and without it (one transaction per turn).
  4. menu: the same N users, saturated, each asking for the menu 30 times: the cheapest kind of turn.

    python bench/engine.py --users 200
    python bench/engine.py --users 200 --repeat 5     # only run 2 with group commit, five times, each
                                                      # between two raw measurements: the ratio's spread
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiosqlite

from bot.config import Settings
from bot.engine.messages import Contact, Incoming, Kind
from bot.runtime import running_bot
from bot.services.card_image import card_png


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


UPSERT = "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v"
WINDOW = 0.5  # seconds: raw rates are taken per window, to show how much they move


class Raw:
    """Every raw window measured in this run: the reference rate is their mean."""

    def __init__(self, path: Path, seconds: float) -> None:
        self.path, self.seconds = path, seconds
        self.windows: list[float] = []
        self.latencies: list[float] = []

    async def measure(self) -> float:
        """Measure for `seconds`; returns the rate of this measurement alone."""
        async with aiosqlite.connect(self.path) as db:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v TEXT)")
            await db.commit()
            windows, n, end = [], 0, time.perf_counter() + self.seconds
            while time.perf_counter() < end:
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < WINDOW:
                    t0 = time.perf_counter()
                    await db.execute(UPSERT, (n % 1000, "x" * 64))
                    await db.commit()
                    self.latencies.append(time.perf_counter() - t0)
                    n, count = n + 1, count + 1
                windows.append(count / (time.perf_counter() - start))
        self.windows += windows
        return statistics.fmean(windows)

    @property
    def rate(self) -> float:
        return statistics.fmean(self.windows)

    def spread(self) -> str:
        return f"windows of {WINDOW:g} s from {min(self.windows):.0f} to {max(self.windows):.0f}"


def inline_commits(path: Path, seconds: float) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v TEXT)")
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        db.execute("BEGIN IMMEDIATE")
        db.execute(UPSERT, (n % 1000, "x" * 64))
        db.execute("COMMIT")
        n += 1
    db.close()
    return n / (time.perf_counter() - start)


def join_script(user: int) -> list[Incoming]:
    base = {"channel": "bench", "user_id": str(user), "display_name": "Rider"}
    phone = f"139{user:08d}"
    steps = [
        Incoming(kind=Kind.COMMAND, text="/start", payload="join-bench", **base),
        Incoming(kind=Kind.TEXT, text="1", **base),
        Incoming(kind=Kind.CONTACT, contact=Contact(phone, str(user)), **base),
        Incoming(kind=Kind.TEXT, text="1", **base),
        Incoming(kind=Kind.TEXT, text="2", **base),
        Incoming(kind=Kind.TEXT, text="1", **base),
        Incoming(kind=Kind.TEXT, text="1", **base),
    ]
    return [Incoming(**{**s.__dict__, "dedupe_key": f"{user}-{i}"}) for i, s in enumerate(steps)]


async def engine_run(db_path: Path, users: int, think: float, group: bool) -> tuple[float, list[float], int]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{db_path}",
        secret_key="bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    )
    latencies: list[float] = []
    card_png.cache_clear()  # every run draws its members' cards afresh, as a real one would
    async with running_bot(settings, group_commit=group) as (app, dispatcher):

        async def user(u: int) -> None:
            if think:
                await asyncio.sleep(think * (u / users))  # spread the first messages over one think time
            for incoming in join_script(u):
                t0 = time.perf_counter()
                await dispatcher.handle(incoming)
                latencies.append(time.perf_counter() - t0)
                if think:
                    await asyncio.sleep(think)

        # Warm up (templates compiled, statements cached) on users outside the measured ones.
        for incoming in join_script(users + 1):
            await dispatcher.handle(incoming)
        latencies.clear()
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(user(u) for u in range(users)))
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        async with app.db.transaction() as tx:
            members = await tx.members.count() - 1
    print(f"    (process CPU {cpu:.2f} s in {elapsed:.2f} s: {cpu / len(latencies) * 1e3:.2f} ms a turn)")
    return len(latencies) / elapsed, latencies, members


async def menu_run(db_path: Path, users: int, rounds: int = 30) -> tuple[float, list[float]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{db_path}",
        secret_key="bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    )
    latencies: list[float] = []
    async with running_bot(settings) as (_, dispatcher):

        async def user(u: int) -> None:
            for i in range(rounds):
                incoming = Incoming(
                    channel="bench", user_id=str(u), kind=Kind.TEXT, text="菜单", dedupe_key=f"m{u}-{i}"
                )
                t0 = time.perf_counter()
                await dispatcher.handle(incoming)
                latencies.append(time.perf_counter() - t0)

        await user(users + 1)  # warm up
        latencies.clear()
        start = time.perf_counter()
        await asyncio.gather(*(user(u) for u in range(users)))
        return len(latencies) / (time.perf_counter() - start), latencies


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--raw-seconds", type=float, default=3.0, help="each raw measurement (before and after)")
    parser.add_argument("--think", type=float, default=1.0, help="seconds between one user's messages (paced run)")
    parser.add_argument("--repeat", type=int, default=0, help="only the saturated group-commit join, this many times")
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, asyncio default loop, "
        f"{os.cpu_count()} cores; WAL, synchronous=NORMAL, one connection"
    )
    with tempfile.TemporaryDirectory() as tmp:
        raw = Raw(Path(tmp) / "raw.db", args.raw_seconds)
        if args.repeat:
            await repeated(raw, Path(tmp), args.users, args.repeat)
            return
        await raw.measure()
        inline = inline_commits(Path(tmp) / "inline.db", 1.0)
        print(f"sqlite3 upsert+commit on the calling thread: {inline:8.0f} commits/s")
        results = []
        for group in (True, False):
            how = "group commit" if group else "a commit per turn"
            tps, lat, members = await engine_run(Path(tmp) / f"sat{group}.db", args.users, 0.0, group)
            results.append((f"engine, {how}, {args.users} users saturated", tps, lat, members))
            tps, lat, members = await engine_run(Path(tmp) / f"paced{group}.db", args.users, args.think, group)
            print(
                f"engine, {how}, {args.users} users, {args.think:g}s think: {tps:5.0f} turns/s   "
                f"p50 {ms(pct(lat, 50))}  p99 {ms(pct(lat, 99))}   mean {ms(statistics.fmean(lat))}   "
                f"({members} members joined)"
            )
        tps, lat = await menu_run(Path(tmp) / "menu.db", args.users)
        results.append((f"engine, group commit, {args.users} users asking for the menu", tps, lat, None))
        await raw.measure()
        print(
            f"raw aiosqlite upsert+commit:   {raw.rate:8.0f} commits/s   p50 {ms(pct(raw.latencies, 50))}  "
            f"p99 {ms(pct(raw.latencies, 99))}   (before and after the runs; {raw.spread()})"
        )
        for what, tps, lat, members in results:
            joined = f"   ({members} members joined)" if members is not None else ""
            print(
                f"{what}: {tps:6.0f} turns/s   p50 {ms(pct(lat, 50))}  p99 {ms(pct(lat, 99))}   "
                f"= {tps / raw.rate:.0%} of raw{joined}"
            )


async def repeated(raw: Raw, tmp: Path, users: int, times: int) -> None:
    """Raw, engine, raw, engine, … raw: each engine run against the mean of the raw measurements around it."""
    ratios = []
    before = await raw.measure()
    for i in range(times):
        tps, lat, members = await engine_run(tmp / f"rep{i}.db", users, 0.0, True)
        after = await raw.measure()
        ratios.append(tps / ((before + after) / 2))
        print(
            f"run {i + 1}: raw {before:.0f} / {after:.0f} commits/s around it; engine, group commit, {users} users "
            f"saturated: {tps:.0f} turns/s, p99 {ms(pct(lat, 99))} = {ratios[-1]:.0%} of raw ({members} members joined)"
        )
        before = after
    mid = statistics.median(ratios)
    print(
        f"ratio over {times} runs: median {mid:.0%}, from {min(ratios):.0%} to {max(ratios):.0%} "
        f"({(min(ratios) / mid - 1):+.0%} / {(max(ratios) / mid - 1):+.0%} of the median); raw {raw.spread()}"
    )


if __name__ == "__main__":
    asyncio.run(main())
