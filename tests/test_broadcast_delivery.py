"""Delivering broadcasts through the fake Telegram Bot API (real HTTP on 127.0.0.1): every reachable
member gets exactly one message whatever 429s come, blocked users are marked unreachable, the send rate
stays within the configured limit and one a second per chat, muted members get nothing, a pause from
elsewhere stops the sender with nothing left half-sent, and the job sends with the channel's deliverer."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import select

from bot.services import broadcast_sender as sender_mod
from bot.services import broadcasts as svc
from bot.services.broadcast_sender import BroadcastSender, telegram_deliverer
from bot.services.broadcasts import Segment
from storage.broadcasts import SENDING
from storage.schema import broadcast_recipients, identities, outbox
from tests.broadcast_helpers import add_members, chat_of, mute
from tests.fakes.telegram_api import TOKEN
from tests.fakes.telegram_harness import fake_api

STAFF = "telegram:999"
RATE = 200


def max_in_a_second(times: list[float]) -> int:
    """The most requests in any one-second window (sliding)."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def settings_for(settings, fake, **broadcast):  # type: ignore[no-untyped-def]
    extra = {"broadcast": {"telegram_rate": RATE, "paid_broadcast": True, **broadcast}}
    return replace(settings, telegram_token=TOKEN, telegram_api_url=fake.api_url, extra=extra)


async def started(app, count: int, *, text: str = "周六微笑集市", muted: int = 0, media_id=None) -> int:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        ids = await add_members(tx, count)
        await mute(tx, ids[:muted])
        b = await svc.create(app, tx, text=text, segment=Segment(), created_by=STAFF, media_id=media_id)
        await svc.start(app, tx, b.id, by=STAFF, background=False)
    return b.id


async def test_thousand_members_with_429s_and_blocked_users(bot, settings) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    async with fake_api() as fake:
        app.settings = settings_for(settings, fake)
        fake.enforce(rate=RATE, per_chat=1, random_429=0.004)
        blocked = {chat_of(n) for n in (3, 50, 400, 777, 999)}
        fake.blocked |= blocked
        broadcast_id = await started(app, 1000)
        async with telegram_deliverer(app.settings) as deliverer:
            end = await BroadcastSender(app, broadcast_id, {"telegram": deliverer}).run()
        assert end == sender_mod.FINISHED
        sends = fake.requests("sendMessage", ok=True)
        per_chat: dict[int, int] = {}
        for call in sends:
            per_chat[call.params["chat_id"]] = per_chat.get(call.params["chat_id"], 0) + 1
        reachable = {chat_of(n) for n in range(1, 1001)} - blocked
        assert set(per_chat) == reachable and set(per_chat.values()) == {1}  # exactly one each
        assert all(str(c.params.get("allow_paid_broadcast")).lower() == "true" for c in sends)
        assert sum(1 for c in fake.requests("sendMessage") if c.status == 429) > 0  # the random ones came
        assert fake.over_limit == 0  # never past Telegram's limits…
        assert max_in_a_second(fake.attempted_at) <= RATE  # …counting every request, refused or not
        async with app.db.transaction() as tx:
            report = await svc.report(app, tx, broadcast_id)
            marked = (
                await tx.conn.execute(select(identities.c.user_key).where(identities.c.unreachable.is_(True)))
            ).scalars()
            summary = (await tx.conn.execute(select(outbox.c.user_key))).scalars().all()
        assert (report.state, report.sent, report.unreachable, report.failed, report.queued) == ("done", 995, 5, 0, 0)
        assert {int(k.partition(":")[2]) for k in marked} == blocked
        assert summary == [STAFF]


async def test_picture_and_text_keep_one_a_second_per_chat(bot, settings) -> None:  # type: ignore[no-untyped-def]
    from bot.services.media import store

    app, _ = bot
    png = (__import__("base64")).b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    async with fake_api() as fake:
        app.settings = settings_for(settings, fake)
        fake.enforce(rate=RATE, per_chat=1)
        media = await store(app.db, app.settings.media_path(), png, max_bytes=10**6, now=app.now())
        broadcast_id = await started(app, 30, media_id=media.id)
        async with telegram_deliverer(app.settings) as deliverer:
            assert await BroadcastSender(app, broadcast_id, {"telegram": deliverer}).run() == sender_mod.FINISHED
        assert fake.over_limit == 0
        for n in range(1, 31):
            kinds = ["photo" if "photo" in m else "text" for m in fake.sent(chat_of(n))]
            assert kinds == ["photo", "text"]


async def test_muted_members_get_nothing_and_are_counted(bot, settings) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    async with fake_api() as fake:
        app.settings = settings_for(settings, fake)
        broadcast_id = await started(app, 20, muted=6)
        async with telegram_deliverer(app.settings) as deliverer:
            await BroadcastSender(app, broadcast_id, {"telegram": deliverer}).run()
        chats = {c.params["chat_id"] for c in fake.requests("sendMessage", ok=True)}
        assert chats == {chat_of(n) for n in range(7, 21)}
        async with app.db.transaction() as tx:
            report = await svc.report(app, tx, broadcast_id)
        assert (report.recipients, report.sent, report.skipped_muted) == (14, 14, 6)


async def test_pause_from_elsewhere_stops_the_sender_cleanly(bot, settings) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    async with fake_api() as fake:
        app.settings = settings_for(settings, fake, telegram_rate=50)
        broadcast_id = await started(app, 200)
        async with telegram_deliverer(app.settings) as deliverer:
            run = asyncio.create_task(BroadcastSender(app, broadcast_id, {"telegram": deliverer}).run())
            await fake.wait_for(lambda: len(fake.requests("sendMessage", ok=True)) >= 30)
            async with app.db.transaction() as tx:
                await svc.pause(app, tx, broadcast_id)
            assert await run == sender_mod.PAUSED
        sent_while_running = len(fake.requests("sendMessage", ok=True))
        async with app.db.transaction() as tx:
            report = await svc.report(app, tx, broadcast_id)
            left_sending = (
                await tx.conn.execute(select(broadcast_recipients).where(broadcast_recipients.c.status == SENDING))
            ).all()
        assert report.state == "paused" and report.sent == sent_while_running < 200
        assert left_sending == []  # claimed but unsent rows were given back
        # Resumed, it carries on with the rest: each member once.
        async with app.db.transaction() as tx:
            await svc.resume(app, tx, broadcast_id, background=False)
        async with telegram_deliverer(app.settings) as deliverer:
            assert await BroadcastSender(app, broadcast_id, {"telegram": deliverer}).run() == sender_mod.FINISHED
        chats = [c.params["chat_id"] for c in fake.requests("sendMessage", ok=True)]
        assert sorted(chats) == [chat_of(n) for n in range(1, 201)]


async def test_background_job_uses_the_registered_deliverer(bot, settings) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    async with fake_api() as fake:
        app.settings = settings_for(settings, fake, paid_broadcast=False, telegram_rate=30)
        async with app.db.transaction() as tx:
            await add_members(tx, 12)
            b = await svc.create(app, tx, text="x", segment=Segment(), created_by="cli:staff")
        async with telegram_deliverer(app.settings) as deliverer:
            app.deliverers["telegram"] = deliverer
            async with app.db.transaction() as tx:
                await svc.start(app, tx, b.id, by="cli:staff", background=True)
            await fake.wait_for(lambda: len(fake.requests("sendMessage", ok=True)) >= 12, 30)

            async def done() -> bool:
                async with app.db.transaction() as tx:
                    return (await svc.report(app, tx, b.id)).state == "done"

            for _ in range(100):
                if await done():
                    break
                await asyncio.sleep(0.1)
        assert await done()
        assert all("allow_paid_broadcast" not in c.params for c in fake.requests("sendMessage"))
        async with app.db.transaction() as tx:
            assert (await tx.conn.execute(select(outbox))).all() == []  # a CLI creator is told by the CLI


@pytest.mark.parametrize("status", ["failed", "unreachable"])
async def test_outcomes_follow_the_platforms_answer(bot, settings, status: str) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    async with fake_api() as fake:
        app.settings = settings_for(settings, fake)
        fake.fail("sendMessage", 400 if status == "failed" else 403, times=1)
        broadcast_id = await started(app, 1)
        async with telegram_deliverer(app.settings) as deliverer:
            await BroadcastSender(app, broadcast_id, {"telegram": deliverer}).run()
        async with app.db.transaction() as tx:
            row = (await tx.conn.execute(select(broadcast_recipients))).one()
        assert row.status == status and row.error in ("BadRequest", "Forbidden")
