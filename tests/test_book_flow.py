"""预约咨询 and 我的预约 through the real dispatcher on a real SQLite file, with slots published through
`tx.bookings.add_slots`: a whole booking typed into `gigunion console` with its calendar file, bad
answers kept at their step, only bookable times offered, a time taken between two taps, an overlapping
booking refused, cancel, reschedule, the words typed back to reminders, and ratings."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import icalendar
import pytest

from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.engine.messages import Kind, Outgoing, T
from bot.handlers.console import run_console
from bot.locale import Locale
from bot.runtime import running_bot
from storage.bookings import Booking, Slot
from tests.chat import Chat, join

L = Locale()
NOW = datetime(2026, 6, 10, 2, 0, tzinfo=UTC)  # 10:00 on Wednesday 10 June in Shanghai
LOCAL = timedelta(hours=8)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in June 2026 as said in Shanghai, in UTC."""
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC) - LOCAL


def t(key: str, lang: str = "zh_CN", **ctx) -> str:  # type: ignore[no-untyped-def]
    return L.render(lang, T(key, **ctx), "console")


@pytest.fixture
async def running(make_settings) -> AsyncIterator[tuple[BotContext, Dispatcher]]:  # type: ignore[no-untyped-def]
    async with running_bot(make_settings()) as (app, dispatcher):
        app.now = lambda: NOW
        yield app, dispatcher


@pytest.fixture
def app(running) -> BotContext:  # type: ignore[no-untyped-def]
    return running[0]


@pytest.fixture
async def alice(running) -> Chat:  # type: ignore[no-untyped-def]
    chat = Chat(running[1], "alice")
    await join(chat, "13800138000", "张三")
    return chat


@pytest.fixture
async def bob(running) -> Chat:  # type: ignore[no-untyped-def]
    chat = Chat(running[1], "bob")
    await join(chat, "13900139000", "李四")
    return chat


async def slots(
    app: BotContext, kind: str, *starts: datetime, station: str | None = "0", capacity: int = 1
) -> list[Slot]:
    minutes = app.profile.consult_kind(kind).duration_minutes  # type: ignore[union-attr]
    async with app.db.transaction() as tx:
        return await tx.bookings.add_slots(
            kind=kind,
            counsellor="console:counsellor",
            station=station,
            starts=list(starts),
            duration=timedelta(minutes=minutes),
            capacity=capacity,
            now=NOW,
        )


async def slot(app: BotContext, slot_id: int) -> Slot:
    async with app.db.transaction() as tx:
        found = await tx.bookings.slot(slot_id)
    assert found is not None
    return found


async def bookings_of(app: BotContext, user: str) -> list[Booking]:
    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key(f"console:{user}")
        assert member is not None
        return await tx.bookings.for_member(member.id)


async def where(app: BotContext, user: str) -> tuple[str | None, str | None]:
    async with app.db.transaction() as tx:
        session = await tx.sessions.get(f"console:{user}")
    return (session.flow, session.step) if session else (None, None)


async def to_summary(chat: Chat, kind: str = "法律咨询", day: str = "明天", time: str = "14:00") -> Outgoing:
    await chat.say("预约")
    await chat.tap(kind)
    await chat.tap(day)
    await chat.tap(time)
    if t("book.mode_button_phone") in chat.labels():
        await chat.tap(t("book.mode_button_phone"))
    return await chat.tap(t("book.skip_topic"))


async def book_one(chat: Chat, **kw: str) -> str:
    await to_summary(chat, **kw)
    out = await chat.tap(t("book.confirm"))
    assert out.document is not None, out.text
    return out.document[0].removesuffix(".ics")


# -- a whole booking ---------------------------------------------------------------------------------
async def test_a_whole_booking_typed_into_the_console_with_its_calendar_file(app, alice, running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    legal = await slots(app, "legal", at(11, 14), at(11, 14, 45))
    # Typed as a rider types at the terminal: numbers for options, a label for "skip".
    lines = ["预约咨询", "1", "1", "1", "1", "路上被交警扣了车，想问问怎么办", "1"]
    out = io.StringIO()
    files = tmp_path / "saved"
    files.mkdir()
    await run_console(
        running[1], "alice", None, False, stdin=io.StringIO("\n".join(lines) + "\n"), stdout=out, files=files
    )
    text = out.getvalue()
    assert "法律咨询" in text and "明天" in text and "14:00" in text
    assert "到站点面谈：杭州市职工服务中心·爱心驿家" in text
    assert "路上被交警扣了车" in text  # the summary shows the topic back
    [booking] = await bookings_of(app, "alice")
    assert booking.status == "booked" and booking.mode == "station" and booking.station == "0"
    assert booking.slot_id == legal[0].id
    assert f"约好了！预约号 {booking.reference}" in text
    assert "明天 14:00–14:45" in text and "杭州市上城区岳王路" in text
    saved = files / f"{booking.reference}.ics"
    assert f"[file: {saved}]" in text
    event = icalendar.Calendar.from_ical(saved.read_bytes()).walk("VEVENT")[0]
    assert event.decoded("dtstart") == at(11, 14) and event.decoded("dtend") == at(11, 14, 45)
    assert booking.reference in str(event.get("summary"))
    assert (await slot(app, legal[0].id)).booked == 1
    # The topic is kept encrypted, and the session holds none of it after booking.
    assert booking.topic_enc and "交警" not in booking.topic_enc
    assert app.keyring.decrypt(booking.topic_enc) == "路上被交警扣了车，想问问怎么办"
    assert (await where(app, "alice"))[0] == "menu"  # back home once booked


async def test_the_console_json_carries_the_file_as_base64(app, alice, running) -> None:  # type: ignore[no-untyped-def]
    await slots(app, "legal", at(11, 14))
    lines = ["/book", "1", "1", "1", "2", "不写了", "1"]
    out = io.StringIO()
    await run_console(running[1], "alice", None, True, stdin=io.StringIO("\n".join(lines) + "\n"), stdout=out)
    messages = [json.loads(line) for line in out.getvalue().splitlines() if "turn_end" not in line]
    [doc] = [m["document"] for m in messages if m.get("document")]
    [booking] = await bookings_of(app, "alice")
    assert doc["name"] == f"{booking.reference}.ics" and booking.mode == "phone"
    assert b"BEGIN:VCALENDAR" in base64.b64decode(doc["base64"])


async def test_the_stored_answer_keeps_the_file_for_a_redelivered_update(app, alice) -> None:  # type: ignore[no-untyped-def]
    await slots(app, "legal", at(11, 14))
    await to_summary(alice)
    tap = alice.incoming(Kind.BUTTON, payload=alice.payload_of(t("book.confirm")), dedupe_key="u-1")
    first = await alice.send(tap)
    again = await alice.send(tap)  # the platform delivers the same update twice
    assert first.document is not None and again.document == first.document
    assert len(await bookings_of(app, "alice")) == 1


# -- bad answers, and what is offered ----------------------------------------------------------------
async def test_garbage_at_every_step_keeps_the_step(app, alice) -> None:  # type: ignore[no-untyped-def]
    await slots(app, "psych", at(11, 14))
    await alice.say("预约")
    assert await where(app, "alice") == ("book", "kind")
    out = await alice.say("随便聊聊")
    assert t("book.choose_kind") in out.text and await where(app, "alice") == ("book", "kind")
    await alice.tap("心理咨询")
    out = await alice.say("下下下周")
    assert await where(app, "alice") == ("book", "day") and "明天" in alice.labels()
    await alice.tap("明天")
    out = await alice.say("25:00")
    assert await where(app, "alice") == ("book", "time")
    await alice.tap("14:00")
    out = await alice.say("飞过去")
    assert t("book.choose_mode") in out.text and await where(app, "alice") == ("book", "mode")
    out = await alice.tap(t("book.mode_button_video"))
    # The psychological note: optional, and who reads it.
    assert "话题可以不填" in out.text and "只有为您咨询的老师能看到" in out.text
    out = await alice.say("很" * 101)
    assert t("book.topic_long", most=100, got=101) in out.text and await where(app, "alice") == ("book", "topic")
    out = await alice.say("最近睡不好")
    assert await where(app, "alice") == ("book", "confirm") and "最近睡不好" in out.text
    out = await alice.say("嗯嗯")
    assert await where(app, "alice") == ("book", "confirm")
    assert await bookings_of(app, "alice") == []


async def test_times_in_the_past_or_inside_the_notice_are_not_offered(app, alice) -> None:  # type: ignore[no-untyped-def]
    past = at(9, 14)  # yesterday
    too_soon = at(10, 11)  # today, one hour from now: inside the two hours' notice
    later_today = at(10, 15)
    friday = at(12, 9)
    await slots(app, "legal", past, too_soon, later_today, friday)
    await alice.say("预约")
    out = await alice.tap("法律咨询")
    assert alice.labels()[:2] == ["今天", "后天"], out.text
    out = await alice.tap("今天")
    assert [label for label in alice.labels() if ":" in label] == ["15:00 · 杭州市职工服务中心·爱心驿家"]


async def test_a_non_member_is_invited_to_join(running) -> None:  # type: ignore[no-untyped-def]
    stranger = Chat(running[1], "stranger")
    out = await stranger.say("预约")
    assert t("book.join_first") in out.text


# -- taken a moment ago -------------------------------------------------------------------------------
async def test_a_time_taken_between_two_taps_gets_just_taken_and_the_next_times(app, alice, bob) -> None:  # type: ignore[no-untyped-def]
    legal = await slots(app, "legal", at(11, 14), at(11, 14, 45), at(12, 10))
    await alice.say("预约")
    await alice.tap("法律咨询")
    await alice.tap("明天")
    times = alice.last
    await book_one(bob)  # Bob takes 14:00 while Alice is looking at it
    out = await alice.tap("14:00", times)
    assert t("book.just_taken", when="明天 14:00") in out.text
    assert await where(app, "alice") == ("book", "next_times")
    assert alice.labels() == ["明天 14:45 · 杭州市职工服务中心·爱心驿家", "后天 10:00 · 杭州市职工服务中心·爱心驿家"]
    await alice.tap("明天 14:45")
    await alice.tap(t("book.mode_button_phone"))
    await alice.tap(t("book.skip_topic"))
    out = await alice.tap(t("book.confirm"))
    [mine] = await bookings_of(app, "alice")
    assert mine.slot_id == legal[1].id and out.document is not None


async def test_the_last_place_taken_while_at_the_summary(app, alice, bob) -> None:  # type: ignore[no-untyped-def]
    await slots(app, "legal", at(11, 14), at(11, 16))
    await to_summary(alice)
    await book_one(bob)
    out = await alice.tap(t("book.confirm"))
    assert t("book.just_taken", when="明天 14:00") in out.text and out.document is None
    assert alice.labels() == ["明天 16:00 · 杭州市职工服务中心·爱心驿家"]
    assert await bookings_of(app, "alice") == []


async def test_an_overlapping_booking_is_refused_and_the_step_stays(app, alice) -> None:  # type: ignore[no-untyped-def]
    await slots(app, "legal", at(11, 14))
    psych = await slots(app, "psych", at(11, 14, 30))
    await book_one(alice)
    await to_summary(alice, kind="心理咨询", time="14:30")
    out = await alice.tap(t("book.confirm"))
    assert t("book.refused_overlap") in out.text and out.document is None
    assert await where(app, "alice") == ("book", "confirm")
    assert len(await bookings_of(app, "alice")) == 1
    assert (await slot(app, psych[0].id)).booked == 0


# -- 我的预约 -----------------------------------------------------------------------------------------
async def test_cancel_asks_first_and_frees_the_place(app, alice) -> None:  # type: ignore[no-untyped-def]
    legal = await slots(app, "legal", at(11, 14))
    ref = await book_one(alice)
    out = await alice.say("我的预约")
    assert "明天 14:00 法律咨询 · 已预约" in alice.labels()
    await alice.tap("明天 14:00")
    out = await alice.tap(t("book.cancel_this"))
    assert "确定要取消明天 14:00的法律咨询吗" in out.text
    out = await alice.tap(t("book.cancel_no"))
    assert t("book.kept") in out.text and (await slot(app, legal[0].id)).booked == 1
    await alice.tap(t("book.cancel_this"))
    out = await alice.tap(t("book.cancel_yes"))
    assert ref in out.text
    [b] = await bookings_of(app, "alice")
    assert b.status == "cancelled" and (await slot(app, legal[0].id)).booked == 0


async def test_reschedule_keeps_the_old_booking_when_the_new_time_fills(app, alice, bob) -> None:  # type: ignore[no-untyped-def]
    legal = await slots(app, "legal", at(11, 14), at(12, 10), at(12, 11))
    ref = await book_one(alice)
    await alice.say("我的预约")
    await alice.tap("明天 14:00")
    await alice.tap(t("book.reschedule"))
    await alice.tap("后天")
    times = alice.last
    await book_one(bob, day="后天", time="10:00")
    out = await alice.tap("10:00", times)
    assert t("book.move_taken", when="后天 10:00") in out.text
    assert await where(app, "alice") == ("my_bookings", "move_time")
    [old] = await bookings_of(app, "alice")
    assert old.reference == ref and old.status == "booked" and (await slot(app, legal[0].id)).booked == 1
    # Then a time that is free: the new place held, the old one given back, a new calendar file.
    out = await alice.tap("11:00")
    assert out.document is not None
    mine = {b.reference: b for b in await bookings_of(app, "alice")}
    assert mine[ref].status == "cancelled"
    [new] = [b for b in mine.values() if b.status == "booked"]
    assert new.slot_id == legal[2].id and new.reference in out.text
    assert (await slot(app, legal[0].id)).booked == 0 and (await slot(app, legal[2].id)).booked == 1


async def test_the_words_from_a_reminder_cancel_wherever_the_member_is(app, alice, bob) -> None:  # type: ignore[no-untyped-def]
    legal = await slots(app, "legal", at(11, 14), at(11, 16))
    ref = await book_one(alice)
    bobs = await book_one(bob, time="16:00")
    await alice.say("我要理赔")  # somewhere else entirely
    out = await alice.say(f"取消预约 {bobs}")  # someone else's reference opens nothing
    assert t("book.not_found") in out.text
    assert [b.status for b in await bookings_of(app, "bob")] == ["booked"]
    out = await alice.say(f"取消预约 {ref.lower()}")
    assert t("book.cancelled", reference=ref, when="明天 14:00") in out.text
    assert (await slot(app, legal[0].id)).booked == 0
    # The English words, on a fresh booking, typed with full-width letters as some keyboards do.
    ref2 = await book_one(alice)
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in ref2)
    out = await alice.say(f"cancel booking {wide}")
    assert [b.status for b in await bookings_of(app, "alice") if b.reference == ref2] == ["cancelled"]


async def test_a_rating_from_one_to_five_is_stored(app, alice, running) -> None:  # type: ignore[no-untyped-def]
    await slots(app, "legal", at(11, 14), at(12, 14))
    ref = await book_one(alice)
    out = await alice.say(f"评价 {ref} 5")
    assert t("book.rating_not_now") in out.text  # not before the session
    app.now = lambda: at(11, 15)  # the session is over
    out = await alice.say(f"评价 {ref} 5")
    assert t("book.rated", stars=5) in out.text
    assert [b.rating for b in await bookings_of(app, "alice")] == [5]
    out = await alice.say(f"rate {ref} 3")
    assert [b.rating for b in await bookings_of(app, "alice")] == [3]
    # One tap in 我的预约 on an unrated one.
    app.now = lambda: NOW
    ref2 = await book_one(alice, day="后天")
    app.now = lambda: at(12, 15)
    await alice.say("我的预约")
    await alice.tap("今天 14:00")  # it is now the 12th
    assert [f"{n} 分" for n in range(1, 6)] == [label for label in alice.labels() if label.endswith(" 分")]
    out = await alice.tap("4 分")
    assert t("book.rated", stars=4) in out.text
    assert {b.reference: b.rating for b in await bookings_of(app, "alice")}[ref2] == 4


async def test_the_reminder_s_cancel_button_works_whatever_the_conversation_did_since(app, alice) -> None:  # type: ignore[no-untyped-def]
    import json

    from sqlalchemy import select

    from bot.engine.messages import Kind, Outgoing
    from bot.services.booking import REMINDER_JOB
    from bot.services.jobs import KINDS, run_due
    from storage.schema import outbox

    legal = await slots(app, "legal", at(11, 14))
    ref = await book_one(alice)
    app.now = lambda: at(11, 13, 5)  # the one-hour reminder is due
    await run_due(app, runner_id="test", kinds={REMINDER_JOB: KINDS[REMINDER_JOB]})
    async with app.db.transaction() as tx:
        bodies = [json.loads(b) for b in (await tx.conn.execute(select(outbox.c.body))).scalars()]
    [reminder] = [Outgoing.from_json(b) for b in bodies if ref in b["text"]]
    [cancel] = reminder.buttons
    assert cancel.label == t("booking.cancel_button")
    await alice.say("我要理赔")  # the conversation has moved on: the reminder's button is not stale for that
    out = await alice.send(alice.incoming(Kind.BUTTON, payload=cancel.payload))
    assert t("book.cancelled", reference=ref, when="今天 14:00") in out.text
    assert [b.status for b in await bookings_of(app, "alice")] == ["cancelled"]
    assert (await slot(app, legal[0].id)).booked == 0
