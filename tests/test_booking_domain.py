"""Booking: the database holds the places (200 racing turns, two processes, PostgreSQL: one booking),
a member holds no two overlapping bookings, cancelling frees the place, rescheduling is all or nothing,
what is too soon is not offered, reminders are sent once (also after a restart) in the member's
language, a counsellor's cancellation offers the next times, and days are said as riders say them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar
from sqlalchemy import select

from bot.engine.context import BotContext
from bot.services import booking as service
from bot.services.booking import BookingRefused
from bot.services.jobs import run_due
from storage import Tx
from storage.bookings import BOOKED, CANCELLED, NO_SHOW, Slot
from storage.members import Member, NewMember
from storage.schema import outbox
from tests.test_claims_domain import NOW, TELEGRAM, WECHAT, make_member, open_app
from tests.test_postgres import postgres_database

ROOT = str(Path(__file__).resolve().parents[1])
COUNSELLOR = "console:li"
TOMORROW = NOW + timedelta(days=1)  # 2026-12-01 10:00 in Shanghai
RACERS = 200


@pytest.fixture(params=["sqlite", "postgresql"])
async def app(request, tmp_path: Path) -> AsyncIterator[BotContext]:  # type: ignore[no-untyped-def]
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        bot = await open_app(url, tmp_path)
        bot.now = lambda: NOW
        yield bot
        await bot.db.close()


async def add_slots(
    app: BotContext, *starts: datetime, capacity: int = 1, kind: str = "legal", station: str | None = "0"
) -> list[Slot]:
    async with app.db.transaction() as tx:
        return await tx.bookings.add_slots(
            kind=kind,
            counsellor=COUNSELLOR,
            station=station,
            starts=list(starts),
            duration=timedelta(minutes=45),
            capacity=capacity,
            now=NOW,
        )


async def bare_members(app: BotContext, count: int, first: int = 1000) -> list[Member]:
    """Members without identities: enough for racing, quick to make."""
    made = []
    async with app.db.transaction() as tx:
        for n in range(first, first + count):
            member = await tx.members.create(
                NewMember(f"HB2026{n:06d}", f"C{n:09d}", f"h{n}", "enc", "r", "美团", "delivery_rider", None, NOW)
            )
            assert member is not None
            made.append(member)
    return made


async def try_book(app: BotContext, member: Member, slot_id: int, now: datetime = NOW, **kw: object) -> str:
    """A booking attempt in a turn of its own: the reference, or the reason it was refused."""

    async def turn(tx: Tx) -> str:
        try:
            options = {"mode": "station", "station": None, "topic": None} | kw
            return (await service.book(tx, app, member, slot_id, now=now, **options)).reference  # type: ignore[arg-type]
        except BookingRefused as e:
            return e.reason

    return await app.db.run_turn(turn)


async def slot_now(app: BotContext, slot_id: int) -> Slot:
    async with app.db.transaction() as tx:
        slot = await tx.bookings.slot(slot_id)
    assert slot is not None
    return slot


async def race(url: str, member_ids: list[int], slot_id: int) -> list[str]:
    """Each member tries the slot at once, from this process (used by the two-process test)."""
    bot = await open_app(url, Path("."))
    try:
        async with bot.db.transaction() as tx:
            members = [await tx.members.by_id(i) for i in member_ids]
        return await asyncio.gather(*(try_book(bot, m, slot_id) for m in members if m is not None))
    finally:
        await bot.db.close()


async def test_200_attempts_on_one_place_give_exactly_one_booking(app: BotContext) -> None:
    (slot,) = await add_slots(app, TOMORROW)
    members = await bare_members(app, RACERS)
    outcomes = await asyncio.gather(*(try_book(app, m, slot.id) for m in members))
    assert sum(o.startswith("YY") for o in outcomes) == 1
    assert outcomes.count("taken") == RACERS - 1
    async with app.db.transaction() as tx:
        assert len(await tx.bookings.all(status=BOOKED)) == 1
    assert (await slot_now(app, slot.id)).booked == 1


async def test_two_processes_racing_for_one_place_give_exactly_one_booking(app: BotContext) -> None:
    (slot,) = await add_slots(app, TOMORROW, capacity=1)
    members = await bare_members(app, 300)
    ids = [m.id for m in members]
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {ROOT!r})
        from tests.test_booking_domain import race
        mine = {ids[:100]!r} if sys.argv[1] == "a" else {ids[100:200]!r}
        outcomes = asyncio.run(race({app.settings.database_url!r}, mine, {slot.id}))
        print(sum(o.startswith("YY") for o in outcomes), outcomes.count("taken"))
        """
    )
    others = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, which, stdout=asyncio.subprocess.PIPE)
        for which in ("a", "b")
    ]
    here = await asyncio.gather(*(try_book(app, m, slot.id) for m in members[200:]))
    outputs = [await asyncio.wait_for(p.communicate(), 120) for p in others]
    assert [p.returncode for p in others] == [0, 0]
    counts = [tuple(map(int, out.split())) for out, _ in outputs]
    wins = sum(won for won, _ in counts) + sum(o.startswith("YY") for o in here)
    taken = sum(t for _, t in counts) + here.count("taken")
    assert (wins, taken) == (1, 299)
    async with app.db.transaction() as tx:
        assert len(await tx.bookings.all()) == 1
    assert (await slot_now(app, slot.id)).booked == 1


async def test_an_overlapping_booking_is_refused_and_takes_no_place(app: BotContext) -> None:
    first, overlapping, after = await add_slots(
        app, TOMORROW, TOMORROW + timedelta(minutes=30), TOMORROW + timedelta(minutes=45), capacity=3
    )
    (member,) = await bare_members(app, 1)
    assert (await try_book(app, member, first.id)).startswith("YY")
    assert await try_book(app, member, overlapping.id) == "overlap"
    assert (await slot_now(app, overlapping.id)).booked == 0
    assert await try_book(app, member, first.id) == "overlap"  # the same slot twice
    assert (await slot_now(app, first.id)).booked == 1
    assert (await try_book(app, member, after.id)).startswith("YY")  # back to back is no overlap


async def test_one_member_tapping_two_overlapping_slots_at_once_gets_one(app: BotContext) -> None:
    a, b = await add_slots(app, TOMORROW, TOMORROW + timedelta(minutes=15), capacity=50)
    (member,) = await bare_members(app, 1)
    outcomes = await asyncio.gather(*(try_book(app, member, (a, b)[i % 2].id) for i in range(50)))
    assert sum(o.startswith("YY") for o in outcomes) == 1 and outcomes.count("overlap") == 49
    assert (await slot_now(app, a.id)).booked + (await slot_now(app, b.id)).booked == 1


async def test_cancelling_frees_the_place_and_drops_the_reminders(app: BotContext) -> None:
    (slot,) = await add_slots(app, TOMORROW + timedelta(days=2))
    first, second = await bare_members(app, 2)
    reference = await try_book(app, first, slot.id)
    assert await try_book(app, second, slot.id) == "taken"
    async with app.db.transaction() as tx:
        assert {j for j in ("1440", "60", "rating") if await tx.jobs.get(f"booking:{reference}:{j}")} == {
            "1440",
            "60",
            "rating",
        }
        with pytest.raises(BookingRefused) as refused:
            await service.cancel(tx, app, reference, by="member", member=second, now=NOW)
        assert refused.value.reason == "not_yours"
        cancelled = await service.cancel(tx, app, reference, by="member", member=first, now=NOW)
        assert cancelled.status == CANCELLED and cancelled.cancelled_by == "member"
        assert await tx.jobs.get(f"booking:{reference}:1440") is None
        assert await tx.jobs.get(f"booking:{reference}:rating") is None
        with pytest.raises(BookingRefused) as again:
            await service.cancel(tx, app, reference, by="member", member=first, now=NOW)
        assert again.value.reason == "not_allowed"
    assert (await slot_now(app, slot.id)).booked == 0
    assert (await try_book(app, second, slot.id)).startswith("YY")


async def test_rescheduling_is_all_or_nothing(app: BotContext) -> None:
    old_slot, full, free = await add_slots(
        app, TOMORROW, TOMORROW + timedelta(minutes=30), TOMORROW + timedelta(hours=3)
    )
    me, other = await bare_members(app, 2)
    reference = await try_book(app, me, old_slot.id)
    assert (await try_book(app, other, full.id)).startswith("YY")

    async def move(tx: Tx, to: int) -> str:
        try:
            return (await service.reschedule(tx, app, reference, to, now=NOW, member=me)).reference
        except BookingRefused as e:
            return e.reason

    assert await app.db.run_turn(lambda tx: move(tx, full.id)) == "taken"
    async with app.db.transaction() as tx:
        kept = await tx.bookings.by_reference(reference)
        assert kept is not None and kept.status == BOOKED
        assert await tx.jobs.get(f"booking:{reference}:60") is not None
    assert [(await slot_now(app, s.id)).booked for s in (old_slot, full, free)] == [1, 1, 0]

    # Into a slot overlapping the old one: the booking it replaces does not count as an overlap.
    (near,) = await add_slots(app, TOMORROW + timedelta(minutes=20))
    new_reference = await app.db.run_turn(lambda tx: move(tx, near.id))
    assert new_reference.startswith("YY") and new_reference != reference
    async with app.db.transaction() as tx:
        old = await tx.bookings.by_reference(reference)
        new = await tx.bookings.by_reference(new_reference)
        assert old is not None and old.status == CANCELLED
        assert new is not None and new.status == BOOKED and new.start_at == near.start_at
        assert await tx.jobs.get(f"booking:{reference}:60") is None
        moved = await tx.jobs.get(f"booking:{new_reference}:60")
        assert moved is not None and moved.due_at == near.start_at - timedelta(hours=1)
    assert [(await slot_now(app, s.id)).booked for s in (old_slot, near)] == [0, 1]


async def test_slots_in_the_past_or_inside_the_notice_are_not_offered(app: BotContext) -> None:
    past, soon, fine, far = await add_slots(
        app,
        NOW - timedelta(hours=1),
        NOW + timedelta(minutes=90),  # inside the default 2 h notice
        NOW + timedelta(hours=3),
        NOW + timedelta(days=31),  # beyond the 30-day horizon
    )
    (cancelled_slot,) = await add_slots(app, NOW + timedelta(hours=4))
    async with app.db.transaction() as tx:
        await tx.bookings.cancel_slot(cancelled_slot.id)
        days = await service.free_days(tx, app, "legal", NOW)
        times = await service.free_times(tx, app, "legal", date(2026, 11, 30), NOW)
        assert await service.free_days(tx, app, "psych", NOW) == []
    assert days == [date(2026, 11, 30)]  # 10:00 UTC+8 now; 13:00 the same local day
    assert [s.id for s in times] == [fine.id]
    (member,) = await bare_members(app, 1)
    reasons = [await try_book(app, member, s.id) for s in (past, soon, far, cancelled_slot)]
    assert reasons == ["too_soon", "too_soon", "too_far", "cancelled_slot"]
    (by_phone,) = await add_slots(app, NOW + timedelta(hours=5), station="phone")
    assert await try_book(app, member, by_phone.id, mode="video") == "not_allowed"
    assert await try_book(app, member, by_phone.id, mode="station") == "not_allowed"
    assert await try_book(app, member, fine.id, mode="fax") == "not_allowed"
    assert await try_book(app, member, 99999) == "not_found"


async def outbox_rows(app: BotContext) -> list[tuple[str, str, str]]:
    async with app.db.transaction() as tx:
        rows = await tx.conn.execute(select(outbox.c.user_key, outbox.c.body).order_by(outbox.c.id))
        return [(r.user_key, json.loads(r.body)["lang"], json.loads(r.body)["text"]) for r in rows]


async def test_a_reminder_due_while_the_bot_was_down_is_sent_once_after_restart_in_each_language(
    app: BotContext, tmp_path: Path
) -> None:
    (slot,) = await add_slots(app, TOMORROW + timedelta(days=1), kind="psych", station="phone")
    async with app.db.transaction() as tx:
        member = await make_member(tx)  # Telegram chose English; WeChat never chose (Chinese)
    reference = await try_book(app, member, slot.id, mode="phone", topic="加班费")
    url = app.settings.database_url
    await app.db.close()

    # Down until 23 h before the session: the 24-hour reminder fell due meanwhile.
    later = slot.start_at - timedelta(hours=23)
    restarted = await open_app(url, tmp_path)
    restarted.now = lambda: later
    try:
        assert await run_due(restarted, runner_id="after-restart") == 1
        assert await run_due(restarted, runner_id="after-restart") == 0
        rows = await outbox_rows(restarted)
        assert sorted((k, lang) for k, lang, _ in rows) == [(f"{TELEGRAM}1", "en"), (f"{WECHAT}1", "zh_CN")]
        text = {lang: t for _, lang, t in rows}
        assert "心理咨询" in text["zh_CN"] and "明天" in text["zh_CN"] and "取消预约 " + reference in text["zh_CN"]
        assert "Psychological counselling" in text["en"] and "tomorrow" in text["en"] and reference in text["en"]
        assert "明天 10:00–10:45" in text["zh_CN"]  # 02:00 UTC shown in Shanghai time
        assert "加班费" not in text["zh_CN"] + text["en"]  # the topic is for the counsellor alone

        # The hour-before reminder, then the rating request once it is over.
        restarted.now = lambda: slot.start_at - timedelta(minutes=59)
        assert await run_due(restarted, runner_id="r") == 1
        restarted.now = lambda: slot.end_at + timedelta(minutes=1)
        assert await run_due(restarted, runner_id="r") == 1
        rows = await outbox_rows(restarted)
        assert len(rows) == 6
        assert "1 小时" in rows[2][2] or "1 小时" in rows[3][2]
        assert any("评价 " + reference in t for _, _, t in rows[4:])
        async with restarted.db.transaction() as tx:
            done = await tx.bookings.by_reference(reference)
            assert done is not None and done.status == "done"
            rated = await service.rate(tx, restarted, reference, 5, now=restarted.now(), member=member)
            assert rated.rating == 5
    finally:
        await restarted.db.close()


async def test_after_a_long_stop_only_the_nearer_reminder_is_sent(app: BotContext) -> None:
    (slot,) = await add_slots(app, TOMORROW + timedelta(days=1))
    async with app.db.transaction() as tx:
        member = await make_member(tx)
    await try_book(app, member, slot.id)
    app.now = lambda: slot.start_at - timedelta(minutes=30)  # both reminders are due now
    assert await run_due(app, runner_id="r") == 2
    texts = [t for _, lang, t in await outbox_rows(app) if lang == "zh_CN"]
    assert len(texts) == 1 and "1 小时" in texts[0]


async def test_a_counsellors_cancellation_tells_the_member_the_next_free_times(app: BotContext) -> None:
    slot, _next, _later = await add_slots(app, TOMORROW, TOMORROW + timedelta(hours=1), TOMORROW + timedelta(days=2))
    async with app.db.transaction() as tx:
        member = await make_member(tx)
        await tx.staff.add("console:wang", "counsellor", "王老师", NOW)
    reference = await try_book(app, member, slot.id)
    async with app.db.transaction() as tx:
        with pytest.raises(BookingRefused) as refused:  # another counsellor's booking
            await service.cancel(tx, app, reference, by="console:wang", now=NOW)
        assert refused.value.reason == "not_yours"
        await service.cancel(tx, app, reference, by=COUNSELLOR, now=NOW)
    rows = await outbox_rows(app)
    zh = next(t for _, lang, t in rows if lang == "zh_CN")
    en = next(t for _, lang, t in rows if lang == "en")
    assert "老师有事" in zh and reference in zh
    assert "明天 11:00–11:45" in zh and "周四 12月3日 10:00–10:45" in zh
    assert "明天 10:00–" not in zh  # the cancelled time is not offered back
    assert "Tomorrow 11:00–11:45" in en and "Thu 3 Dec 10:00" in en


async def test_no_show_and_rating_only_when_they_make_sense(app: BotContext) -> None:
    (slot,) = await add_slots(app, TOMORROW)
    (member,) = await bare_members(app, 1)
    reference = await try_book(app, member, slot.id)
    during = slot.start_at + timedelta(minutes=10)
    async with app.db.transaction() as tx:
        for call, reason in (
            (service.mark_no_show(tx, app, reference, by=COUNSELLOR, now=NOW), "not_allowed"),  # not begun
            (service.mark_no_show(tx, app, reference, by="member", now=during), "not_yours"),
            (service.rate(tx, app, reference, 5, now=during), "not_allowed"),  # not ended
            (service.rate(tx, app, reference, 6, now=slot.end_at), "not_allowed"),
        ):
            with pytest.raises(BookingRefused) as refused:
                await call
            assert refused.value.reason == reason
        marked = await service.mark_no_show(tx, app, reference, by=COUNSELLOR, now=during)
        assert marked.status == NO_SHOW and await tx.jobs.get(f"booking:{reference}:rating") is None
        with pytest.raises(BookingRefused):
            await service.rate(tx, app, reference, 4, now=slot.end_at)


def test_days_are_said_the_way_riders_say_them(tmp_path: Path) -> None:
    app = asyncio.run(open_app(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", tmp_path))
    today = date(2026, 12, 1)
    said = {
        lang: [service.day_words(app, today + timedelta(days=n), today, lang) for n in (0, 1, 2, 3, -1)]
        for lang in ("zh_CN", "en")
    }
    assert said["zh_CN"] == ["今天", "明天", "后天", "周五 12月4日", "周一 11月30日"]
    assert said["en"] == ["Today", "Tomorrow", "The day after tomorrow", "Fri 4 Dec", "Mon 30 Nov"]
    assert service.local_time(app, datetime(2026, 12, 3, 6, 0, tzinfo=UTC)) == "14:00"
    asyncio.run(app.db.close())


async def test_the_ics_file_holds_the_booking(app: BotContext) -> None:
    (slot,) = await add_slots(app, TOMORROW)
    (member,) = await bare_members(app, 1)
    reference = await try_book(app, member, slot.id)
    async with app.db.transaction() as tx:
        booking = await tx.bookings.by_reference(reference)
    assert booking is not None
    event = Calendar.from_ical(service.ics(app, booking, slot, "zh_CN")).walk("VEVENT")[0]
    assert event.decoded("dtstart") == slot.start_at and event.decoded("dtend") == slot.end_at
    assert reference in str(event["summary"]) and "法律咨询" in str(event["summary"])
    assert "爱心驿家" in str(event["location"])


def test_booking_settings_are_checked_with_their_ranges() -> None:
    from bot.config import load_settings
    from bot.errors import ConfigProblem

    settings = load_settings(
        environ={"GIGUNION_BOOKING_REMINDERS_MINUTES": "60, 1440", "GIGUNION_BOOKING_HORIZON_DAYS": "7"}
    )
    assert settings.booking_reminders_minutes == (1440, 60) and settings.booking_horizon_days == 7
    for name, value in (("HORIZON_DAYS", "0"), ("MIN_NOTICE_MINUTES", "-5"), ("REMINDERS_MINUTES", "60,soon")):
        with pytest.raises(ConfigProblem):
            load_settings(environ={f"GIGUNION_BOOKING_{name}": value})
    assert replace(settings, booking_min_notice_minutes=0).booking_min_notice_minutes == 0
