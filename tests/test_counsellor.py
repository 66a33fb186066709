"""The counsellor's tools in the chat: who sees them, publishing times (exact slots in UTC from times
said in Asia/Shanghai, minimum notice, bad input at every step), and 我的咨询 (own bookings only, with
the member's name and phone; cancelling and no-shows)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.services import booking as service
from storage.bookings import Booking, Slot
from storage.schema import outbox
from tests.chat import Chat, join

# Tuesday 1 December 2026, 10:00 in Hangzhou.
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
PUBLISH, MINE = "发布时段", "我的咨询"
REFUSED = "只对工会工作人员开放"


@pytest.fixture
async def desk(bot):  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    app.now = lambda: NOW
    return app, dispatcher


async def staffer(desk, user: str, role: str, name: str = "王老师") -> Chat:  # type: ignore[no-untyped-def]
    app, dispatcher = desk
    async with app.db.transaction() as tx:
        await tx.staff.add(f"telegram:{user}", role, name, app.now())
    return Chat(dispatcher, channel="telegram", user=user)


async def counsellor_slots(app, counsellor: str) -> list[Slot]:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return await tx.bookings.slots(counsellor=counsellor)


async def booking_now(app, reference: str) -> Booking:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return await tx.bookings.by_reference(reference)


async def slot_now(app, slot_id: int) -> Slot:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return await tx.bookings.slot(slot_id)


async def messages_to(app, user_key: str) -> list[str]:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        rows = await tx.conn.execute(select(outbox.c.body).where(outbox.c.user_key == user_key).order_by(outbox.c.id))
        return [json.loads(body)["text"] for (body,) in rows]


async def to_day_step(chat: Chat) -> None:
    await chat.command("/staff")
    await chat.tap(PUBLISH)
    await chat.tap("法律咨询")
    await chat.tap("爱心驿家")


# -- who sees the tools --------------------------------------------------------------------------------
@pytest.mark.parametrize(("role", "sees"), [("counsellor", True), ("admin", True), ("claims", False),
                                            ("complaints", False), ("broadcaster", False)])  # fmt: skip
async def test_only_counsellors_and_admin_have_the_tools(desk, role: str, sees: bool) -> None:  # type: ignore[no-untyped-def]
    chat = await staffer(desk, "1", role)
    await chat.command("/staff")
    assert (PUBLISH in chat.labels()) is sees and (MINE in chat.labels()) is sees
    for command in ("/slots", "/consults"):
        out = await chat.command(command)
        if sees:
            assert "咨询类型" in out.text or "咨询预约共 0 个" in out.text
        else:
            assert "咨询专员" in out.text and "没有开通" in out.text


async def test_members_and_strangers_are_refused(desk) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = desk
    member = Chat(dispatcher, user="m")
    await join(member)
    for chat in (member, Chat(dispatcher, user="stranger")):
        for command in ("/slots", "/consults"):
            out = await chat.command(command)
            assert REFUSED in out.text and "咨询" not in out.text
            assert PUBLISH not in chat.labels() and MINE not in chat.labels()


# -- publishing ---------------------------------------------------------------------------------------
async def test_four_sessions_every_45_minutes_make_exactly_those_slots(desk) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    chat = await staffer(desk, "1", "counsellor")
    await chat.command("/staff")
    out = await chat.tap(PUBLISH)
    assert "先选咨询类型" in out.text and "心理咨询（每场 50 分钟）" in chat.labels()
    out = await chat.tap("法律咨询")
    assert "驿站：湖滨街道工会驿站" in chat.labels() and "视频咨询" in chat.labels()
    await chat.tap("爱心驿家")
    assert chat.labels()[:3] == ["今天", "明天", "后天"]
    out = await chat.tap("明天")
    assert "明天几点开始第一场" in out.text
    await chat.say("下午2点")
    await chat.tap("4")
    out = await chat.tap("默认")
    assert "每场最多几个人" in out.text
    out = await chat.tap("1 人")
    assert "法律咨询 · 驿站：杭州市职工服务中心·爱心驿家 · 每场一对一" in out.text
    for line in ("明天 14:00–14:45", "明天 14:45–15:30", "明天 15:30–16:15", "明天 16:15–17:00", "共 4 场"):
        assert line in out.text
    assert await counsellor_slots(app, "telegram:1") == []  # nothing before confirming
    out = await chat.tap("确认发布")
    assert "已发布 4 场法律咨询" in out.text
    slots = await counsellor_slots(app, "telegram:1")
    # 14:00 in Hangzhou on 2 December is 06:00 UTC.
    first = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    assert [(s.start_at, s.end_at) for s in slots] == [
        (first + timedelta(minutes=45 * i), first + timedelta(minutes=45 * i + 45)) for i in range(4)
    ]
    assert {(s.kind, s.station, s.capacity, s.booked, s.cancelled) for s in slots} == {("legal", "0", 1, 0, False)}


async def test_a_group_session_by_phone_on_a_typed_day(desk) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    chat = await staffer(desk, "1", "admin")
    await chat.command("/slots")
    await chat.tap("劳动政策咨询")
    assert "视频咨询" not in chat.labels()  # not a mode of this kind
    await chat.tap("电话咨询")
    out = await chat.say("12月10日")
    assert "周四 12月10日几点开始第一场" in out.text
    await chat.say("19:30")
    await chat.say("1")
    out = await chat.say("12")  # one session: no gap asked
    assert "最多 12 人" in out.text and "电话咨询" in out.text
    await chat.tap("确认发布")
    [slot] = await counsellor_slots(app, "telegram:1")
    assert (slot.station, slot.capacity, slot.start_at) == ("phone", 12, datetime(2026, 12, 10, 11, 30, tzinfo=UTC))


async def test_a_time_inside_the_minimum_notice_is_refused(desk) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    chat = await staffer(desk, "1", "counsellor")
    await to_day_step(chat)
    await chat.tap("今天")
    out = await chat.say("11:00")  # an hour from now; two are needed
    assert "这个时间太近了" in out.text and "至少要提前 2 小时" in out.text and "今天 12:00" in out.text
    assert "几点开始第一场" in out.text  # the step is kept
    out = await chat.say("12:00")
    assert "连着排几场" in out.text
    await chat.tap("1")
    await chat.tap("1 人")
    # The preview stays open past the notice: the confirmation refuses, and nothing is made.
    app.now = lambda: NOW + timedelta(minutes=5)
    out = await chat.tap("确认发布")
    assert "这个时间太近了" in out.text and "几点开始第一场" in out.text
    assert await counsellor_slots(app, "telegram:1") == []


async def test_garbage_at_every_step_keeps_the_step(desk) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    chat = await staffer(desk, "1", "counsellor")
    await chat.command("/slots")
    out = await chat.say("随便")
    assert "请选一种咨询类型（点下面的按钮）" in out.text
    await chat.tap("心理咨询")
    out = await chat.say("家里")
    assert "请选地点或方式（点下面的按钮）" in out.text
    await chat.tap("视频咨询")
    out = await chat.say("下下周")
    assert "没看懂这个日期" in out.text
    out = await chat.say("2020-01-01")
    assert "这一天已经过去了" in out.text
    await chat.say("后天")
    for bad in ("下午", "25:00", "14:61", "abc"):
        out = await chat.say(bad)
        assert "没看懂这个时间" in out.text
    await chat.say("9:30")
    for bad in ("0", "13", "很多"):
        out = await chat.say(bad)
        assert "场数请填 1 到 12" in out.text
    await chat.say("三")
    out = await chat.say("30")
    assert "不能比一场咨询还短（50 分钟）" in out.text
    out = await chat.say("一会儿")
    assert "请输入分钟数" in out.text
    await chat.say("1小时")
    for bad in ("0", "31", "一群"):
        out = await chat.say(bad)
        assert "人数请填 1 到 30" in out.text
    out = await chat.say("5")
    assert "后天 09:30–10:20" in out.text and "后天 10:30–11:20" in out.text and "后天 11:30–12:20" in out.text
    out = await chat.say("好")
    assert out.text.startswith("请点") and "后天 09:30–10:20" in out.text and "✅ 确认发布" in chat.labels()
    await chat.tap("确认发布")
    slots = await counsellor_slots(app, "telegram:1")
    assert [(s.station, s.capacity, s.start_at.hour, s.start_at.minute) for s in slots] == [
        ("video", 5, 1, 30),
        ("video", 5, 2, 30),
        ("video", 5, 3, 30),
    ]


async def test_times_overlapping_ones_already_published_are_not_published_again(desk) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    chat = await staffer(desk, "1", "counsellor")
    for start in ("14:00", "14:30"):
        await to_day_step(chat)
        await chat.tap("明天")
        await chat.say(start)
        await chat.tap("2")
        await chat.tap("默认")
        out = await chat.tap("1 人")
        if start == "14:00":
            await chat.tap("确认发布")
    assert "和您已经发布的时段撞了" in out.text and chat.labels()[0] == "改开始时间"
    assert len(await counsellor_slots(app, "telegram:1")) == 2


# -- my consultations ---------------------------------------------------------------------------------
async def publish(app, counsellor: str, start: datetime, capacity: int = 1) -> Slot:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        [slot] = await tx.bookings.add_slots(
            kind="legal",
            counsellor=counsellor,
            station="0",
            starts=[start],
            duration=timedelta(minutes=45),
            capacity=capacity,
            now=app.now(),
        )
        return slot


async def booked(desk, rider: str, phone: str, name: str, slot: Slot, topic: str | None = None) -> Booking:  # type: ignore[no-untyped-def]
    app, dispatcher = desk
    await join(Chat(dispatcher, user=rider), phone=phone, name=name)
    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key(f"console:{rider}")
        return await service.book(tx, app, member, slot.id, mode="station", station="0", topic=topic, now=app.now())


TOMORROW_2PM = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
async def two_counsellors(desk):  # type: ignore[no-untyped-def]
    app, _ = desk
    wang = await staffer(desk, "1", "counsellor", "王老师")
    li = await staffer(desk, "2", "counsellor", "李老师")
    slot_wang = await publish(app, "telegram:1", TOMORROW_2PM)
    slot_li = await publish(app, "telegram:2", TOMORROW_2PM + timedelta(hours=1))
    later = await publish(app, "telegram:1", TOMORROW_2PM + timedelta(days=1))
    zhang = await booked(desk, "r1", "13800138001", "张三", slot_wang, topic="平台拖欠三个月工资")
    lisi = await booked(desk, "r2", "13900139002", "李四", slot_li)
    return wang, li, zhang, lisi, slot_wang, later


async def test_my_consults_shows_only_my_bookings_with_name_phone_and_topic(desk, two_counsellors) -> None:  # type: ignore[no-untyped-def]
    wang, li, zhang, _, _, _ = two_counsellors
    out = await wang.command("/consults")
    assert "您接下来的咨询预约共 1 个" in out.text
    assert wang.labels()[0] == "明天 14:00 · 法律咨询 · 张三"
    assert not any("李四" in label for label in wang.labels())
    out = await wang.tap("张三")
    assert f"预约 {zhang.reference}" in out.text and "明天 14:00–14:45" in out.text
    assert "会员：张三，手机 13800138001" in out.text and "平台拖欠三个月工资" in out.text
    assert "到驿站面谈（杭州市职工服务中心·爱心驿家）" in out.text

    out = await li.command("/consults")
    assert "共 1 个" in out.text and li.labels()[0] == "明天 15:00 · 法律咨询 · 李四"
    assert not any("张三" in label for label in li.labels())
    out = await li.say(zhang.reference)  # a reference typed opens nothing that is not theirs
    assert f"没有找到预约号 {zhang.reference}" in out.text and "张三" not in out.text
    assert "13800138001" not in "".join(m.text for m in li.history)


async def test_an_admin_sees_every_counsellors_bookings(desk, two_counsellors) -> None:  # type: ignore[no-untyped-def]
    _, _, zhang, _, _, _ = two_counsellors
    admin = await staffer(desk, "9", "admin", "赵主任")
    out = await admin.command("/consults")
    assert "所有老师接下来的咨询预约共 2 个" in out.text
    assert admin.labels()[:2] == ["明天 14:00 · 法律咨询 · 张三", "明天 15:00 · 法律咨询 · 李四"]
    out = await admin.tap("张三")
    assert f"预约 {zhang.reference}" in out.text
    assert "咨询老师：王老师" in out.text and "手机 13800138001" in out.text


async def test_a_cancellation_frees_the_place_and_tells_the_member_with_next_times(desk, two_counsellors) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    wang, _, zhang, lisi, slot_wang, _ = two_counsellors
    await wang.command("/consults")
    await wang.tap("张三")
    out = await wang.tap("取消这个预约")
    assert "会员会收到这个原因" in out.text
    out = await wang.say("x")
    assert "至少两个字" in out.text  # the step is kept
    out = await wang.say("要去法院开庭。")
    assert "请确认：取消明天 14:00 的法律咨询" in out.text and "原因：要去法院开庭" in out.text
    assert (await booking_now(app, zhang.reference)).status == "booked"  # nothing before confirming
    out = await wang.tap("确认")
    assert f"预约 {zhang.reference} 已取消" in out.text and "共 0 个" in out.text
    now = await booking_now(app, zhang.reference)
    assert (now.status, now.cancelled_by) == ("cancelled", "telegram:1")
    assert (await slot_now(app, slot_wang.id)).booked == 0
    told = await messages_to(app, "console:r1")
    assert len(told) == 2 and zhang.reference in told[0]
    assert "后天 14:00–14:45" in told[0]  # the next free time of that kind
    assert "老师留言：要去法院开庭。" in told[1] and "。。" not in told[1]
    assert await messages_to(app, "console:r2") == []
    assert (await booking_now(app, lisi.reference)).status == "booked"


async def test_a_no_show_is_refused_before_the_start_and_recorded_after(desk, two_counsellors) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    wang, _, zhang, _, _, _ = two_counsellors
    await wang.command("/consults")
    await wang.tap("张三")
    out = await wang.tap("记为爽约")
    assert "咨询 14:00 才开始，开始之后才能记爽约" in out.text
    assert (await booking_now(app, zhang.reference)).status == "booked"
    app.now = lambda: TOMORROW_2PM + timedelta(minutes=20)
    out = await wang.command("/consults")
    assert "今天 14:00 · 法律咨询 · 张三" in wang.labels()  # under way: still listed
    await wang.tap("张三")
    out = await wang.tap("记为爽约")
    assert "没有来，记为爽约" in out.text
    out = await wang.tap("确认")
    assert f"预约 {zhang.reference} 已记为爽约" in out.text
    assert (await booking_now(app, zhang.reference)).status == "no_show"


async def test_in_english_too(desk, two_counsellors) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = desk
    async with app.db.transaction() as tx:
        await tx.staff.add("telegram:3", "counsellor", "Ms Chen", app.now())
    chat = Chat(dispatcher, channel="telegram", user="3", language_hint="en")
    await chat.command("/slots")
    await chat.tap("Legal advice")
    await chat.tap("By video")
    await chat.tap("Tomorrow")
    out = await chat.say("10am")
    assert "too soon" not in out.text and "How many sessions" in out.text
    await chat.tap("2")
    await chat.tap("default")
    out = await chat.tap("1 person")
    assert "Legal advice · By video · one-to-one" in out.text and "Tomorrow 10:00–10:45" in out.text
    out = await chat.tap("Publish")
    assert "2 Legal advice sessions published" in out.text
    wang = Chat(dispatcher, channel="telegram", user="1", language_hint="en")
    await wang.command("/lang", "en")
    out = await wang.command("/consults")
    assert "upcoming consultations: 1" in out.text and wang.labels()[0].startswith("Tomorrow 14:00 · Legal advice")
