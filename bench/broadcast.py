"""A broadcast to N members (default 100,000) through a fake Telegram Bot API that enforces a rate.

The fake runs in a process of its own (so it does not share the sender's CPU), on 127.0.0.1, and
answers like Telegram under load: 429 with retry_after once more than `--rate` messages arrive in any
one second, or two in one second in a chat. The sender is the bot's own (bot.services.broadcast_sender,
with `[broadcast] telegram_rate` and `paid_broadcast = true`), on a SQLite file with the audience frozen
as `gigunion broadcast send` freezes it.

Prints, measured in this run on this machine:
  1. the achieved rate (messages accepted / wall time from the first to the last) as a fraction of
     the allowed rate (target ≥ 0.95);
  2. the 429s received (rate exceeded, and in all);
  3. duplicates, counted on the fake: messages beyond the first in a chat (must be 0);
  4. the sender's peak memory (maximum resident set size).

    python bench/broadcast.py                          # 100,000 recipients at 1,000/s: about 100 s
    python bench/broadcast.py --recipients 10000 --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHAT_BASE = 10_000_000


# -- the fake, in its own process --------------------------------------------------------------------
def serve_fake(rate: float, conn) -> None:  # type: ignore[no-untyped-def]
    from tests.fakes.telegram_api import FakeTelegram

    async def main() -> None:
        fake = await FakeTelegram().start()
        fake.enforce(rate=rate, per_chat=1)
        # The bench keeps counts, not every request (100,000 of them would weigh on the fake).
        fake.calls = _Discard()
        fake.messages = _Discard()
        conn.send(fake.port)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # the sender is done
        conn.send(
            {
                "delivered": dict(fake.delivered),
                "over_limit": fake.over_limit,
                "attempts": len(fake.attempted_at),
                "first": fake.attempted_at[0] if fake.attempted_at else 0.0,
                "last": fake.attempted_at[-1] if fake.attempted_at else 0.0,
            }
        )
        await fake.stop()

    asyncio.run(main())


class _Discard(dict):  # type: ignore[type-arg]
    """Keeps nothing: stands in for the fake's request log and message store."""

    def append(self, _item: object) -> None:
        return None

    def __setitem__(self, _key: object, _value: object) -> None:
        return None

    def __len__(self) -> int:
        return 0


# -- the sender --------------------------------------------------------------------------------------
async def seed(app, count: int) -> None:  # type: ignore[no-untyped-def]
    """Members in bulk, each with one Telegram identity (as joining makes them, without its turns)."""
    from storage.schema import identities, members

    now = datetime.now(UTC) - timedelta(days=1)
    chunk = 5000
    for start in range(0, count, chunk):
        rows = range(start + 1, min(start + chunk, count) + 1)
        async with app.db.transaction() as tx:
            await tx.conn.execute(
                members.insert(),
                [
                    {
                        "id": n,
                        "member_number": f"HB{n:08d}",
                        "card_code": f"C{n:08d}",
                        "phone_hash": f"h{n}",
                        "phone_enc": "x",
                        "name": "rider",
                        "platform": "美团",
                        "work_kind": "delivery_rider",
                        "source": None,
                        "joined_at": now,
                        "notices_muted": False,
                    }
                    for n in rows
                ],
            )
            await tx.conn.execute(
                identities.insert(),
                [
                    {
                        "user_key": f"telegram:{CHAT_BASE + n}",
                        "member_id": n,
                        "channel": "telegram",
                        "linked_at": now,
                        "unreachable": False,
                    }
                    for n in rows
                ],
            )


async def bench(recipients: int, rate: float) -> None:
    from bot.config import Settings
    from bot.runtime import running_bot
    from bot.services import broadcasts as svc
    from bot.services.broadcast_sender import BroadcastSender, telegram_deliverer
    from tests.fakes.telegram_api import TOKEN

    parent, child = mp.Pipe()
    fake = mp.get_context("spawn").Process(target=serve_fake, args=(rate, child), daemon=True)
    fake.start()
    port = parent.recv()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{folder}/gigunion.db",
            secret_key="bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            home=folder,
            telegram_token=TOKEN,
            telegram_api_url=f"http://127.0.0.1:{port}/bot",
        )
        settings = replace(settings, extra={"broadcast": {"telegram_rate": rate, "paid_broadcast": True}})
        async with running_bot(settings, run_jobs=False) as (app, _):
            t0 = time.perf_counter()
            await seed(app, recipients)
            async with app.db.transaction() as tx:
                b = await svc.create(
                    app, tx, text="本周六微笑集市，欢迎来湖滨驿站。", segment=svc.Segment(), created_by="cli:bench"
                )
                await svc.start(app, tx, b.id, by="cli:bench", background=False)
            print(
                f"{recipients:,} members seeded and frozen in {time.perf_counter() - t0:.1f} s; "
                f"sending at {rate:,.0f}/s…"
            )
            async with telegram_deliverer(app.settings) as deliverer:
                sender = BroadcastSender(app, b.id, {"telegram": deliverer})
                started = time.perf_counter()
                end = await sender.run()
                elapsed = time.perf_counter() - started
            async with app.db.transaction() as tx:
                report = await svc.report(app, tx, b.id)
    parent.send("done")
    stats = parent.recv()
    fake.join(10)

    delivered = stats["delivered"]
    duplicates = sum(n - 1 for n in delivered.values() if n > 1)
    accepted = sum(delivered.values())
    span = max(stats["last"] - stats["first"], 1e-9)
    achieved = accepted / span
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ended: {end}; report: sent {report.sent:,}, failed {report.failed}, unreachable {report.unreachable}")
    print(f"achieved rate:   {achieved:,.1f}/s of {rate:,.0f}/s allowed = {achieved / rate:.3f}  (target ≥ 0.95)")
    print(
        f"                 ({accepted:,} accepted between the first and the last request, {span:.1f} s; "
        f"{recipients / elapsed:,.1f}/s over the sender's whole run of {elapsed:.1f} s)"
    )
    print(
        f"429s received:   {sender.progress.retried} "
        f"(over the rate: {stats['over_limit']}; requests {stats['attempts']:,})"
    )
    print(f"duplicates:      {duplicates} (must be 0); chats reached {len(delivered):,} of {recipients:,}")
    print(f"peak memory:     {peak_mb:,.0f} MB (sender process, max RSS)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages a second the fake allows")
    args = parser.parse_args()
    asyncio.run(bench(args.recipients, args.rate))


if __name__ == "__main__":
    main()
