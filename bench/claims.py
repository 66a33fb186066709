"""How fast claims are submitted and decided on SQLite, beside the raw speed of a durable SQLite commit.

Prints, all measured in this one run on this machine:
  1. raw: single-row commits through aiosqlite (bench/engine.py's `Raw`), before and after, as reference;
  2. submit: N members (closed loop) each talking through a whole claim with the bot (the dispatcher,
     console channel: type, date, what happened, amount, two photos fetched, checked and stored before
     their turns, payout, confirm; 12 turns): claims/s, turns/s against raw, and p50/p99 turn latency;
  3. decide: the same N workers taking and approving every claim (`decide_from_cli`, two transitions,
     two notices each): decisions/s and p50/p99;
  4. the database's size (file and -wal) and the media folder's.

Deciding is driven through `Database.run_turn` (the turn the review flow commits at its last step).

    python bench/claims.py                       # 10,000 claims, 200 members
    python bench/claims.py --claims 1000 --users 50
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import random
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from bench.engine import Raw, pct
from bot.config import Settings
from bot.engine.messages import Incoming, Kind, Media, Outgoing
from bot.runtime import running_bot
from bot.services import claims
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
    async with running_bot(settings, run_jobs=False) as (app, dispatcher):
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
                await tx.members.link(f"console:m{i}", member.id, now)
                members.append(member)
        media_dir = settings.media_path()
        photos = folder / "photos"
        photos.mkdir()
        per_user = [total // users + (i < total % users) for i in range(users)]
        submit_latency: list[float] = []
        numbers: list[str] = []
        updates = itertools.count()

        async def say(u: int, kind: Kind, **fields: object) -> Outgoing:
            incoming = Incoming(channel="console", user_id=f"m{u}", kind=kind, dedupe_key=f"b{next(updates)}", **fields)  # type: ignore[arg-type]
            t0 = time.perf_counter()
            [out] = await dispatcher.handle(incoming)
            submit_latency.append(time.perf_counter() - t0)
            return out

        async def tap(u: int, out: Outgoing, label: str) -> Outgoing:
            payload = next(b.payload for b in out.buttons if label in b.label)
            return await say(u, Kind.BUTTON, payload=payload)

        async def member_submits(u: int) -> None:
            rng = random.Random(u)
            for c in range(per_user[u]):
                paths = []
                for d in range(2):  # written before the conversation, as a phone has them in its gallery
                    path = photos / f"{u}-{c}-{d}.jpg"
                    await asyncio.to_thread(path.write_bytes, picture(rng))
                    paths.append(path)
                out = await say(u, Kind.TEXT, text="我要理赔")
                out = await tap(u, out, "家财损失")
                out = await tap(u, out, "今天")
                out = await say(u, Kind.TEXT, text="暴雨进水，电动车和手机泡坏了，物业开了证明")
                out = await say(u, Kind.TEXT, text=f"{rng.randrange(100, 4000)}.{rng.randrange(100):02d}")
                for path in paths:  # the damage, then the list of items: the flow moves to the next item itself
                    out = await say(u, Kind.PHOTO, media=Media(file_id=str(path), url=path.as_uri()))
                out = await tap(u, out, "材料发完了")
                out = await tap(u, out, "银行卡")
                out = await say(u, Kind.TEXT, text="张三")
                out = await say(u, Kind.TEXT, text="6222020200112233445")
                out = await tap(u, out, "确认提交")
                number = re.search(r"LP\d{4}-\d{6}", out.text)
                assert number, "the claim was not submitted"
                numbers.append(number.group())

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
    print(
        "submitting: each member talks through the whole claim in the chat (the dispatcher, console channel: "
        "12 turns, two photos fetched, checked and stored); deciding: take and approve in one turn each"
    )
    print(f"raw commits:   {raw.rate:8.0f} /s  ({raw.spread()})")
    print(
        f"submitted:     {total / submit_seconds:8.0f} claims/s  ({len(submit_latency) / submit_seconds:.0f} turns/s "
        f"= {len(submit_latency) / submit_seconds / raw.rate:.2f} x raw; two documents each)  "
        f"turn p50 {pct(submit_latency, 50) * 1000:.1f} ms, "
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
