"""活动报名 and 活动签到 through the real dispatcher on a real SQLite file, in Chinese and in English, with
garbage at every step: the list, an event opened (time in Shanghai, place, places left), 报名 to a
place or to the waiting list with the position, the words of a notice's button (from anywhere), my
sign-ups, a cancel asked again that promotes the next member (told through the outbox), the refusals,
a non-member told how to join, and staff checking members in by their card code."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.engine.context import BotContext
from bot.engine.dispatcher import SAYS, Dispatcher
from bot.engine.messages import Kind, Outgoing, T
from bot.locale import Locale
from bot.runtime import running_bot
from bot.services import events as service
from bot.services.crypto import CARD_QR_PREFIX, format_card_code
from storage.events import Event
from storage.members import Member
from storage.schema import outbox
from tests.chat import Chat, join

L = Locale()
NOW = datetime(2026, 6, 10, 2, 0, tzinfo=UTC)  # 10:00 on Wednesday 10 June in Shanghai
STARTS = datetime(2026, 6, 13, 6, 0, tzinfo=UTC)  # 14:00 on Saturday 13 June in Shanghai
GARBAGE = ("吃了吗", "99", "🙂", "x" * 300, "报名 abc")


def t(key: str, lang: str = "zh_CN", **ctx) -> str:  # type: ignore[no-untyped-def]
    return L.render(lang, T(key, **ctx), "console")


@pytest.fixture
async def running(make_settings) -> AsyncIterator[tuple[BotContext, Dispatcher]]:  # type: ignore[no-untyped-def]
    async with running_bot(make_settings(), run_jobs=False) as (app, dispatcher):
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
    await chat.command("/lang", "en")
    return chat


async def new_event(app: BotContext, capacity: int = 1, title: str = "微笑集市", **kw: object) -> Event:
    options = {
        "description": "免费理发、测血压、手机贴膜",
        "station": "0",
        "place": None,
        "starts_at": STARTS,
        "signup_deadline": STARTS - timedelta(days=1),
    } | kw
    async with app.db.transaction() as tx:
        return await service.create_event(
            app,
            tx,
            title=title,
            capacity=capacity,
            created_by="cli:test",
            **options,  # type: ignore[arg-type]
        )


async def member(app: BotContext, user: str) -> Member:
    async with app.db.transaction() as tx:
        found = await tx.members.by_user_key(f"console:{user}")
    assert found is not None
    return found


async def status_of(app: BotContext, event_id: int, user: str) -> str | None:
    m = await member(app, user)
    async with app.db.transaction() as tx:
        signup = await tx.events.signup(event_id, m.id)
    return signup.status if signup else None


async def where(app: BotContext, user: str) -> tuple[str | None, str | None]:
    async with app.db.transaction() as tx:
        session = await tx.sessions.get(f"console:{user}")
    return (session.flow, session.step) if session else (None, None)


async def told(app: BotContext) -> list[tuple[str, str]]:
    async with app.db.transaction() as tx:
        rows = await tx.conn.execute(select(outbox.c.user_key, outbox.c.body).order_by(outbox.c.id))
        return [(r.user_key, json.loads(r.body)["text"]) for r in rows]


async def notice_button(chat: Chat, words: str) -> Outgoing:
    """The sign-up button of a notice sent through the outbox: it says words, and is never stale."""
    return await chat.send(chat.incoming(Kind.BUTTON, payload=SAYS + words))


async def garbage_keeps_the_step(app: BotContext, chat: Chat) -> None:
    before = await where(app, chat.user)
    for junk in GARBAGE:
        out = await chat.say(junk)
        assert await where(app, chat.user) == before, junk
        assert "Traceback" not in out.text and out.buttons, junk


# -- members, in Chinese ----------------------------------------------------------------------------
async def test_list_open_sign_up_my_sign_ups_and_cancel_in_chinese_with_garbage(app, alice, bob) -> None:  # type: ignore[no-untyped-def]
    event = await new_event(app, capacity=1)
    await new_event(app, capacity=5, title="技能比赛", starts_at=STARTS + timedelta(days=3))
    out = await alice.say("活动报名")
    assert t("events.list") in out.text
    assert alice.labels()[:2] == [
        "周六 6月13日 14:00 微笑集市（剩 1 个名额）",
        "周二 6月16日 14:00 技能比赛（剩 5 个名额）",
    ]
    await garbage_keeps_the_step(app, alice)
    out = await alice.tap("微笑集市")
    assert "时间：周六 6月13日 14:00" in out.text  # 06:00 UTC said in Shanghai time
    assert "地点：杭州市职工服务中心·爱心驿家（杭州市上城区岳王路）" in out.text
    assert "还剩 1 个" in out.text and "免费理发" in out.text and "报名截止：后天 14:00" in out.text
    await garbage_keeps_the_step(app, alice)
    out = await alice.tap(t("events.signup_button"))
    assert out.text.startswith("报上了！「微笑集市」周六 6月13日 14:00")
    assert await status_of(app, event.id, "alice") == "confirmed"
    assert t("events.cancel_button") in alice.labels() and t("events.signup_button") not in alice.labels()
    # Pressing a notice's button again says where she stands and takes nothing more.
    out = await notice_button(alice, "报名 1")
    assert "您已经报过「微笑集市」了" in out.text
    out = await alice.say("我的报名")
    assert t("events.mine", count=1) in out.text and alice.labels()[0] == "周六 6月13日 14:00 微笑集市 · 已报上"
    await garbage_keeps_the_step(app, alice)
    out = await alice.tap("微笑集市")
    assert "✅ 您已经报上了" in out.text
    # Bob, full: on the waiting list, told his place in line.
    out = await notice_button(bob, service.signup_words(event.id, "en"))
    assert "is full, so you're on the waiting list, number 1" in out.text
    # Cancelling is asked again; garbage and "no" keep the sign-up.
    out = await alice.tap(t("events.cancel_button"))
    assert "确定要取消「微笑集市」" in out.text and "名额会让给候补的人" in out.text
    await garbage_keeps_the_step(app, alice)
    await alice.tap(t("events.cancel_no"))
    assert await status_of(app, event.id, "alice") == "confirmed"
    await alice.tap(t("events.cancel_button"))
    out = await alice.tap(t("events.cancel_yes"))
    assert "已经帮您取消了「微笑集市」的报名" in out.text
    assert await where(app, "alice") == ("menu", "main")
    assert (await status_of(app, event.id, "alice"), await status_of(app, event.id, "bob")) == (
        "cancelled",
        "confirmed",
    )
    # Bob is told through the outbox, in the language he chose.
    [(key, text)] = await told(app)
    assert key == "console:bob" and "A place came free and it's yours" in text and "Sat 13 Jun 14:00" in text


async def test_the_words_of_a_notices_button_work_from_anywhere(app, alice) -> None:  # type: ignore[no-untyped-def]
    first = await new_event(app, capacity=3)
    second = await new_event(app, capacity=3, title="法律讲座")
    await alice.say("预约咨询")  # in the middle of another flow
    out = await notice_button(alice, f"报名 {first.id}")
    assert out.text.startswith("报上了！「微笑集市」")
    await alice.tap(t("events.back_to_list"))  # now inside 活动报名, at another step
    out = await alice.say(f"报名{second.id}")  # typed, without the space
    assert out.text.startswith("报上了！「法律讲座」")
    out = await notice_button(alice, "报名 999")
    assert t("events.not_found") in out.text
    assert (await status_of(app, first.id, "alice"), await status_of(app, second.id, "alice")) == (
        "confirmed",
        "confirmed",
    )


async def test_refusals_in_the_chat_deadline_passed_cancelled_none_left(app, alice, bob) -> None:  # type: ignore[no-untyped-def]
    closing = await new_event(app, capacity=2, signup_deadline=NOW + timedelta(hours=1))
    called_off = await new_event(app, capacity=2, title="法律讲座")
    async with app.db.transaction() as tx:
        await service.cancel_event(app, tx, called_off.id, NOW)
    out = await notice_button(alice, f"报名 {called_off.id}")
    assert t("events.refused_cancelled") in out.text
    app.now = lambda: NOW + timedelta(hours=2)
    out = await notice_button(alice, f"报名 {closing.id}")
    assert t("events.refused_closed") in out.text
    assert t("events.signup_button") not in alice.labels()
    assert await status_of(app, closing.id, "alice") is None
    out = await bob.say("events")
    assert "Sat 13 Jun 14:00 微笑集市 (2 left)" in bob.labels()  # a closed event is still shown, not offered
    out = await bob.tap("微笑集市")
    assert "Sign-up has closed." in out.text and "Sign up" not in bob.labels()
    app.now = lambda: STARTS + timedelta(minutes=1)
    out = await bob.say("events")
    assert t("events.none", "en") in out.text


async def test_a_non_member_who_taps_sign_up_is_told_how_to_join(app, running) -> None:  # type: ignore[no-untyped-def]
    event = await new_event(app)
    stranger = Chat(running[1], "stranger")
    out = await notice_button(stranger, f"报名 {event.id}")
    assert t("events.join_first") in out.text and "入会" in out.text
    out = await stranger.command("/events")
    assert t("events.join_first") in out.text
    async with app.db.transaction() as tx:
        assert await tx.events.active_of(event.id) == []


# -- members, in English ----------------------------------------------------------------------------
async def test_the_whole_thing_in_english_with_the_waiting_list(app, alice, bob) -> None:  # type: ignore[no-untyped-def]
    event = await new_event(app, capacity=1, title="Skills contest")
    await notice_button(alice, f"报名 {event.id}")
    out = await bob.command("/events")
    assert t("events.list", "en") in out.text
    assert bob.labels()[0] == "Sat 13 Jun 14:00 Skills contest (full, waiting list)"
    await garbage_keeps_the_step(app, bob)
    out = await bob.tap("Skills contest")
    assert "When: Sat 13 Jun 14:00" in out.text and "all taken" in out.text
    await garbage_keeps_the_step(app, bob)
    out = await bob.tap(t("events.waitlist_button", "en"))
    assert "you're on the waiting list, number 1" in out.text
    out = await bob.say("my events")
    assert bob.labels()[0] == "Sat 13 Jun 14:00 Skills contest · Waiting list, no. 1"
    await bob.tap("Skills contest")
    out = await bob.tap(t("events.cancel_button", "en"))
    assert "You'll leave the waiting list." in out.text
    await garbage_keeps_the_step(app, bob)
    out = await bob.tap(t("events.cancel_yes", "en"))
    assert "Your sign-up for Skills contest is cancelled." in out.text
    assert await status_of(app, event.id, "bob") == "cancelled"
    assert await told(app) == []  # leaving a waiting list frees no place: nobody is told anything
    # Back again: at the end of the line, which is now first.
    out = await notice_button(bob, f"sign up {event.id}")
    assert "number 1" in out.text
    out = await bob.say("my events")
    await bob.tap(t("events.back_to_menu", "en"))
    assert await where(app, "bob") == ("menu", "main")


# -- staff: check-in --------------------------------------------------------------------------------
async def test_check_in_by_card_code_in_chinese_and_english_with_garbage(app, running, alice, bob) -> None:  # type: ignore[no-untyped-def]
    event = await new_event(app, capacity=1)
    await new_event(app, capacity=1, title="法律讲座")
    carol = Chat(running[1], "carol")
    await join(carol, "13700137000", "王五")
    await notice_button(alice, f"报名 {event.id}")
    await notice_button(bob, f"报名 {event.id}")  # waiting
    async with app.db.transaction() as tx:
        await tx.staff.add("console:wang", "broadcaster", "王老师", NOW)
        await tx.staff.add("console:chen", "claims", "Ms Chen", NOW)
    staff = Chat(running[1], "wang")
    out = await staff.say("活动签到")
    assert t("events.checkin_pick") in out.text
    assert staff.labels()[0] == "周六 6月13日 14:00 微笑集市（已签到 0/1）"
    await garbage_keeps_the_step(app, staff)
    out = await staff.tap("微笑集市")
    assert "「微笑集市」签到中，已签到 0/1 人" in out.text
    for junk in ("吃了吗", "1234", "AB12-CD34", "🙂"):
        out = await staff.say(junk)
        assert out.text.startswith(t("events.checkin_bad_card")), junk
    out = await staff.send(staff.incoming(Kind.CONTACT))  # not text at all
    assert t("events.checkin_code_hint") in out.text
    a, b, c = await member(app, "alice"), await member(app, "bob"), await member(app, "carol")
    out = await staff.say(format_card_code(a.card_code).lower())
    assert out.text.startswith(f"✅ 签到成功：{a.member_number}，张*") and "已签到 1/1 人" in out.text
    out = await staff.say(CARD_QR_PREFIX + a.card_code)  # scanned from the card's QR code, twice
    assert out.text.startswith(f"⚠️ 会员 {a.member_number} 已经签过到了（10:00）")
    out = await staff.say(b.card_code)
    assert out.text.startswith(f"⚠️ 会员 {b.member_number} 在候补名单上")
    out = await staff.say(c.card_code)
    assert out.text.startswith(f"⚠️ 会员 {c.member_number} 没有报名这个活动")
    assert await where(app, "wang") == ("checkin", "code")
    await staff.tap(t("events.checkin_other_event"))
    assert await where(app, "wang") == ("checkin", "pick")
    await staff.tap("微笑集市")
    out = await staff.tap(t("events.checkin_done"))
    assert t("events.checkin_finished", checked_in=1) in out.text
    # Another role, in English.
    chen = Chat(running[1], "chen")
    await chen.command("/lang", "en")
    out = await chen.command("/checkin")
    assert chen.labels()[0] == "Sat 13 Jun 14:00 微笑集市 (1/1 in)"
    await chen.tap("微笑集市")
    out = await chen.say(a.card_code)
    assert out.text.startswith(f"⚠️ Member {a.member_number} has already checked in (10:00).")
    out = await chen.say("nonsense")
    assert out.text.startswith(t("events.checkin_bad_card", "en"))
    # Members are not staff.
    out = await carol.say("活动签到")
    assert await where(app, "carol") != ("checkin", "pick")
    assert "工作人员" in out.text


async def test_check_in_appears_in_the_staff_menu(app, running) -> None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        await tx.staff.add("console:wang", "broadcaster", "王老师", NOW)
    staff = Chat(running[1], "wang")
    await staff.say("工作人员")
    out = await staff.tap(t("events.checkin_tool"))
    assert t("events.checkin_none") in out.text
