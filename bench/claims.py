"""How fast claims are submitted and decided on SQLite, beside the raw speed of a durable SQLite commit.

Prints, all measured in this one run on this machine:
  1. raw: single-row commits through aiosqlite (bench/engine.py's `Raw`), before and after, as reference;
  2. submit: N members (closed loop) each storing two documents (real image files through the media
     store, outside the turn, as a channel's fetcher does) then submitting a claim in one turn
     (`bot.services.claims.submit` through `Database.run_turn`, with group commit): claims/s and the
     p50/p99 turn latency;
  3. decide: the same N workers taking and approving every claim (`decide_from_cli`, two transitions,
     two notices each): decisions/s and p50/p99;
  4. the database's size (file and -wal) and the media folder's.

The turns are driven through `Database.run_turn`, not the chat dispatcher: they are the turns the
member flow "claim" and the review flow commit at their last step, without the conversation before.

    python bench/claims.py                       # 10,000 claims, 200 members
    python bench/claims.py --claims 1000 --users 50
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from bench.engine import Raw, pct
from bot.config import Settings
from bot.runtime import running_bot
from bot.services import claims
from bot.services.media import store
from storage.members import NewMember


def picture(rng: random.Random) -> bytes:
    """A small photo of a document, different every time (as riders' photos are)."""
    image = Image.new("RGB", (96, 64), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(40):
        image.putpixel((rng.randrange(96), rng.randrange(64)), tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def size_of(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


async def main(total: int, users: int, raw_seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="gigunion-claims-bench-"))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder / 'gigunion.db'}",
        secret_key="bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        home=str(folder),
    )
    raw = Raw(folder / "raw.db", raw_seconds)
    await raw.measure()
    async with running_bot(settings, run_jobs=False) as (app, _dispatcher):
        now = app.now()
        members = []
        async with app.db.transaction() as tx:
            for i in range(users):
                member = await tx.members.create(
                    NewMember(
                        f"HB2026{i:06d}", f"C{i:07d}", f"h{i}", app.keyring.encrypt("13800000000"), "骑手",
                        "美团", "delivery_rider", None, now - timedelta(days=200),
                    )
                )  # fmt: skip
                assert member is not None
                await tx.members.link(f"telegram:{1000 + i}", member.id, now)
                members.append(member)
        media_dir = settings.media_path()
        per_user = [total // users + (i < total % users) for i in range(users)]
        submit_latency: list[float] = []
        numbers: list[str] = []

        async def member_submits(u: int) -> None:
            rng = random.Random(u)
            member = members[u]
            for _ in range(per_user[u]):
                docs = []
                for item in ("diagnosis", "receipts"):
                    stored = await store(app.db, media_dir, picture(rng), max_bytes=10_000_000, now=app.now())
                    docs.append({"id": stored.id, "item": item})
                draft = {
                    "type": "injury",
                    "incident_date": (now - timedelta(days=3)).date().isoformat(),
                    "description": "送餐途中被电动车撞倒，左腿擦伤，去医院拍了片",
                    "claimed_fen": rng.randrange(10_000, 1_000_000),
                    "media": docs,
                    "payout_kind": "bank",
                    "payout_holder_enc": app.keyring.encrypt("骑手"),
                    "payout_account_enc": app.keyring.encrypt("6222020200112233445"),
                    "id_number_enc": app.keyring.encrypt("11010519491231002X"),
                }
                t0 = time.perf_counter()
                claim = await app.db.run_turn(
                    lambda tx, d=draft: claims.submit(tx, app, member, d, now=app.now(), actor=f"telegram:{1000 + u}")
                )
                submit_latency.append(time.perf_counter() - t0)
                numbers.append(claim.number)

        start = time.perf_counter()
        await asyncio.gather(*(member_submits(u) for u in range(users)))
        submit_seconds = time.perf_counter() - start

        decide_latency: list[float] = []
        queue = list(numbers)

        async def reviewer(r: int) -> None:
            while queue:
                number = queue.pop()
                t0 = time.perf_counter()
                await app.db.run_turn(
                    lambda tx, n=number: claims.decide_from_cli(
                        tx, app, n, claims.APPROVED, now=app.now(), actor=f"telegram:staff{r}", approved_fen=5000
                    )
                )
                decide_latency.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(reviewer(r) for r in range(users)))
        decide_seconds = time.perf_counter() - start
        async with app.db.transaction() as tx:
            approved = await tx.claims.count([claims.APPROVED])
            documents = len(await tx.claims.documents((await tx.claims.queue([claims.APPROVED], 0, 1))[0].id))
    await raw.measure()

    db_size = size_of([folder / "gigunion.db", folder / "gigunion.db-wal"])
    media_size = size_of(list(media_dir.rglob("*")))
    print(
        f"claims bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {total} claims by {users} members, "
        "SQLite + group commit"
    )
    print("turns driven through Database.run_turn (the submit and decide turns), not the chat dispatcher")
    print(f"raw commits:   {raw.rate:8.0f} /s  ({raw.spread()})")
    print(
        f"submitted:     {total / submit_seconds:8.0f} claims/s  ({total / submit_seconds / raw.rate:.2f} x raw; "
        f"two documents each, stored then linked)  turn p50 {pct(submit_latency, 50) * 1000:.1f} ms, "
        f"p99 {pct(submit_latency, 99) * 1000:.1f} ms"
    )
    print(
        f"decided:       {total / decide_seconds:8.0f} claims/s  ({total / decide_seconds / raw.rate:.2f} x raw; "
        f"taken and approved in one turn)  turn p50 {pct(decide_latency, 50) * 1000:.1f} ms, "
        f"p99 {pct(decide_latency, 99) * 1000:.1f} ms"
    )
    print(f"approved:      {approved} of {total}, {documents} documents on a claim")
    print(f"database:      {mb(db_size)} (file and -wal)   media: {mb(media_size)} in {media_dir}")
    print(f"left in {folder} (remove it when done)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--raw-seconds", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(main(args.claims, args.users, args.raw_seconds))
