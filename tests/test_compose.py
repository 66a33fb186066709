"""发布通知 and 我的通知 in the chat, as a broadcaster: bad input refused at every step with the step kept,
the preview equal to the notice a member then receives (text, button, picture), the audience size shown
equal to the members who match, the broadcast created with its segment and started (or scheduled), and
nobody else let in or told what the tool does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.engine.messages import Incoming, Kind, Outgoing
from bot.handlers.console import parse_line
from bot.runtime import running_bot
from bot.services import broadcasts, events
from bot.services.broadcast_sender import FINISHED, BroadcastSender
from bot.services.outbox import SENT, Delivery
from storage.members import NewMember
from storage.schema import jobs
from storage.sessions import Session
from tests.chat import Chat, join
from tests.test_media import pdf, png

# Tuesday 1 December 2026, 10:00 in Hangzhou.
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
TEXT = "本周六上午九点，湖滨驿站举办微笑集市：免费理发、体检、手机贴膜，欢迎来玩。"
RULE = "\n\n————"  # where the preview's own words begin after the notice


class Recorder:
    """A console deliverer that keeps what each member would get."""

    channel = "console"

    def __init__(self) -> None:
        self.got: dict[str, Outgoing] = {}

    async def deliver(self, user_key: str, message: Outgoing) -> Delivery:
        self.got[user_key] = message
        return SENT


@pytest.fixture
async def desk(make_settings, tmp_path: Path) -> AsyncIterator[tuple[BotContext, Dispatcher]]:  # type: ignore[no-untyped-def]
    async with running_bot(make_settings(media_dir=str(tmp_path / "media"))) as (app, dispatcher):
        app.now = lambda: NOW
        yield app, dispatcher


class Desk:
    """A broadcaster at the console, where `/photo PATH` sends a picture."""

    def __init__(self, app: BotContext, dispatcher: Dispatcher, files: Path, lang: str | None = None) -> None:
        self.app = app
        self.chat = Chat(dispatcher, user="boss", language_hint=lang)
        self.files = files
        self.lang = lang

    async def line(self, text: str) -> Outgoing:
        return await self.chat.send(parse_line(text, "boss", self.lang))

    async def photo(self, data: bytes, name: str = "poster.png", command: str = "/photo") -> Outgoing:
        path = self.files / name
        path.write_bytes(data)
        return await self.line(f"{command} {path}")

    async def sticker(self) -> Outgoing:
        return await self.chat.send(Incoming("console", "boss", Kind.OTHER, language_hint=self.lang))


async def broadcaster(desk, tmp_path: Path, role: str = "broadcaster", lang: str | None = None) -> Desk:  # type: ignore[no-untyped-def]
    app, dispatcher = desk
    async with app.db.transaction() as tx:
        await tx.staff.add("console:boss", role, "李姐", NOW)
    return Desk(app, dispatcher, tmp_path, lang)


async def add_member(  # type: ignore[no-untyped-def]
    app,
    n: int,
    *,
    platform: str = "美团",
    work_kind: str = "delivery_rider",
    source: str | None = None,
    joined: date = date(2026, 3, 1),
    lang: str | None = None,
    muted: bool = False,
) -> str:
    async with app.db.transaction() as tx:
        member = await tx.members.create(
            NewMember(
                member_number=f"HB2026{n:06d}",
                card_code=f"C{n:07d}",
                phone_hash=f"hash-{n}",
                phone_enc="enc",
                name="骑手",
                platform=platform,
                work_kind=work_kind,
                source=source,
                joined_at=datetime(joined.year, joined.month, joined.day, 4, 0, tzinfo=UTC),
            )
        )
        assert member is not None
        await tx.members.link(f"console:m{n}", member.id, NOW)
        if lang:
            await tx.sessions.save(Session(user_key=f"console:m{n}", lang=lang))
        if muted:
            await tx.members.set_muted(member.id, True)
    return f"console:m{n}"


async def an_event(app, title: str = "微笑集市") -> int:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        event = await events.create_event(
            app,
            tx,
            title=title,
            description="免费理发、体检",
            station="1",
            place=None,
            starts_at=NOW + timedelta(days=4),
            signup_deadline=NOW + timedelta(days=3),
            capacity=50,
            created_by="console:boss",
        )
    return event.id


async def the_broadcasts(app) -> list[broadcasts.Broadcast]:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return list(reversed(await tx.broadcasts.latest(50)))


async def jobs_of(app, kind: str) -> list[str]:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return [row.key for row in await tx.conn.execute(select(jobs.c.key).where(jobs.c.kind == kind))]


async def deliver(app, broadcast_id: int) -> Recorder:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    assert await BroadcastSender(app, broadcast_id, {"console": recorder}).run() == FINISHED
    return recorder


def notice_in(preview: Outgoing, received: Outgoing) -> bool:
    """The preview is its own first paragraph, then the notice exactly, then the audience and the choices."""
    intro = preview.text.split("\n\n", 1)[0]
    return preview.text.startswith(f"{intro}\n\n{received.text}{RULE}")


# -- a whole notice, with bad input at every step ---------------------------------------------------------
async def test_a_notice_in_chinese_with_garbage_at_every_step(desk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    event_id = await an_event(app)
    members = [await add_member(app, n, platform="美团", joined=date(2026, 7, 1)) for n in range(1, 4)]
    await add_member(app, 4, platform="美团", joined=date(2026, 1, 1))  # joined before the date chosen
    await add_member(app, 5, platform="饿了么", joined=date(2026, 7, 1))  # another platform
    muted = await add_member(app, 6, platform="美团", joined=date(2026, 8, 1), muted=True)
    d = await broadcaster(desk, tmp_path)
    chat = d.chat
    await chat.command("/staff")
    assert "发布通知" in chat.labels() and "我的通知" in chat.labels()
    out = await chat.tap("发布通知")
    assert "先写通知内容" in out.text and "最多 2000 个字" in out.text
    # The text: blank, far too long, too long for a notice, a photo.
    out = await chat.say("   ")
    assert "通知内容是空的" in out.text and "先写通知内容" in out.text
    out = await chat.say("长" * 5000)
    assert "太长" in out.text and "先写通知内容" in out.text
    out = await chat.say("长" * (broadcasts.MAX_TEXT + 1))
    assert "最多 2000 个字" in out.text and "通知太长了" in out.text
    out = await d.photo(png())
    assert "请直接打字" in out.text
    out = await chat.say(TEXT)
    assert "要配一张图片吗" in out.text
    # The picture: a sticker, a file that is no photo, words.
    out = await d.sticker()
    assert "请发一张照片过来" in out.text and "不配图片" in chat.labels()
    out = await d.photo(pdf(), "poster.pdf", "/file")
    assert "只能放照片" in out.text
    out = await chat.say("好的")
    assert "请发一张照片过来" in out.text
    poster = png(80, 60)
    out = await d.photo(poster)
    assert "要在通知里加上活动报名吗" in out.text
    # The sign-up button: words that are no event.
    out = await chat.say("随便")
    assert "选一个活动，或者不加报名" in out.text
    await chat.tap("微笑集市")
    assert "发给谁" in chat.last.text and "符合的会员 6 人，其中 1 人关闭了通知" in chat.last.text
    # The audience: an unknown platform, a date in the future, then 美团 since 1 June.
    await chat.tap("按平台")
    out = await chat.say("火星快递")
    assert "请从下面的平台里选一个" in out.text
    out = await chat.tap("美团")
    assert "平台：美团" in out.text and "符合的会员 5 人，其中 1 人" in out.text
    out = await chat.tap("按入会日期")
    out = await chat.say("2027-01-01")
    assert "还没到" in out.text
    out = await chat.say("2026-06-01")
    assert "2026年6月1日以后入会" in out.text and "符合的会员 4 人，其中 1 人" in out.text
    preview = await chat.tap("看预览")
    assert "符合的会员 4 人，其中 1 人关闭了通知，实际发给 3 人" in preview.text
    assert preview.image is not None and TEXT in preview.text
    assert chat.labels()[0] == "我要报名"
    out = await chat.tap("我要报名")  # in the preview, the members' button only explains itself
    assert "在预览里选它不会报名" in out.text
    # Scheduling: not a time, a time past; then back, and send now.
    await chat.tap("定时发送")
    out = await chat.say("abc")
    assert "时间没看懂" in out.text
    out = await chat.say("2026-11-30 09:00")
    assert "已经过去了" in out.text
    await chat.tap("返回上一步")
    assert await the_broadcasts(app) == []  # nothing saved before sending
    out = await chat.tap("现在发送")
    assert "通知 #1 开始发送了，发给 3 人（另有 1 人关闭了通知，不发）" in out.text
    assert "gigunion broadcast status 1" in out.text and "发送报告" in out.text
    [b] = await the_broadcasts(app)
    assert b.state == broadcasts.SENDING and b.created_by == "console:boss" and b.text == TEXT
    assert broadcasts.Segment.from_json(b.segment) == broadcasts.Segment(platform="美团", joined_since=date(2026, 6, 1))
    assert (b.event_id, b.recipients, b.skipped_muted) == (event_id, 3, 1) and b.media_id is not None
    assert await jobs_of(app, broadcasts.SEND_JOB) == [broadcasts.send_key(1)]  # handed to the bot processes
    # Delivered: each matching member gets exactly what the preview showed.
    got = (await deliver(app, b.id)).got
    assert set(got) == set(members) and muted not in got
    for message in got.values():
        assert notice_in(preview, message), (preview.text, message.text)
        assert [x.label for x in message.buttons] == [preview.buttons[0].label]
        assert message.buttons[0].payload.endswith(events.signup_words(event_id, "zh_CN"))
        assert message.image == preview.image


async def test_a_notice_in_english_scheduled_for_tomorrow(desk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    english = [await add_member(app, n, lang="en") for n in (1, 2)]
    await add_member(app, 3)  # Chinese: not in the audience
    await add_member(app, 4, lang="en", muted=True)
    d = await broadcaster(desk, tmp_path, lang="en")
    chat = d.chat
    out = await chat.say("send a notice")
    assert "First, the text" in out.text and "At most 2000 characters" in out.text
    out = await chat.say("   ")
    assert "empty" in out.text.lower()
    out = await chat.say("x" * 5000)
    assert "First, the text" in out.text
    out = await chat.say("x" * 2001)
    assert "First, the text" in out.text
    out = await chat.say("Free legal advice at the Hubin station on Saturday.")
    out = await d.sticker()
    assert 'or choose "No picture"' in out.text
    out = await d.photo(pdf(), "a.pdf", "/file")
    assert "not a file like a PDF" in out.text
    out = await chat.tap("No picture")
    assert "no event open for sign-up" in out.text
    out = await chat.tap("No sign-up")
    assert "4 members match, 1 of them have muted notices" in out.text
    await chat.tap("By language")
    out = await chat.say("Klingon")
    assert "Please choose a language" in out.text
    out = await chat.tap("English")
    assert "Language: English" in out.text and "3 members match" in out.text
    preview = await chat.tap("These members: preview")
    assert "3 members match; 1 of them have muted notices, so it goes to 2" in preview.text
    assert preview.image is None and chat.labels()[0] == "Send now"
    await chat.tap("Schedule")
    out = await chat.say("abc")
    assert "couldn't read that time" in out.text
    out = await chat.say("yesterday 9:00")
    assert "couldn't read" in out.text or "has passed" in out.text
    out = await chat.say("2026-12-01 09:59")  # a minute ago in Hangzhou
    assert "has passed" in out.text
    out = await chat.say("tomorrow 9:00")
    assert "Notice #1 will go out at 2026-12-02 09:00" in out.text and "gigunion broadcast cancel 1" in out.text
    [b] = await the_broadcasts(app)
    assert b.state == broadcasts.SCHEDULED and b.send_at == datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert broadcasts.Segment.from_json(b.segment) == broadcasts.Segment(lang="en")
    assert await jobs_of(app, broadcasts.START_JOB) == [broadcasts.start_key(1)]
    await chat.command("/mynotices")
    out = await chat.tap("#1")
    assert "Notice #1: waiting for its time" in out.text and "Due to go out at 2026-12-02 09:00" in out.text
    assert "To: Language: English" in out.text and "Cancel sending" in chat.labels()
    # When its time comes, the English members get what the preview showed.
    async with app.db.transaction() as tx:
        await broadcasts.start(app, tx, b.id, by="console:boss", background=False)
    got = (await deliver(app, b.id)).got
    assert set(got) == set(english)
    for message in got.values():
        assert notice_in(preview, message) and message.buttons == () and message.image is None


# -- the audience ---------------------------------------------------------------------------------------
async def test_the_audience_shown_is_the_members_who_match(desk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    people = [
        dict(platform="美团", work_kind="courier", source="station-12", joined=date(2026, 5, 1)),
        dict(platform="美团", work_kind="courier", source="station-12", joined=date(2026, 9, 1), muted=True),
        dict(platform="美团", work_kind="courier", source="station-12", joined=date(2026, 10, 1), lang="en"),
        dict(platform="美团", work_kind="delivery_rider", source="station-12", joined=date(2026, 9, 1)),
        dict(platform="饿了么", work_kind="courier", source="station-12", joined=date(2026, 9, 1)),
        dict(platform="美团", work_kind="courier", source="station-7", joined=date(2026, 9, 1)),
        dict(platform="美团", work_kind="courier", source=None, joined=date(2026, 9, 1)),
        dict(platform="美团", work_kind="courier", source="station-12", joined=date(2026, 11, 30)),
    ]
    for n, who in enumerate(people, start=1):
        await add_member(app, n, **who)  # type: ignore[arg-type]
    d = await broadcaster(desk, tmp_path)
    chat = d.chat
    await chat.say("发布通知")
    await chat.say(TEXT)
    await chat.tap("不配图片")
    out = await chat.tap("不加报名")
    assert "符合的会员 8 人，其中 1 人关闭了通知" in out.text
    await chat.tap("按工种")
    out = await chat.tap("快递员")
    assert "工种：快递员" in out.text and "符合的会员 7 人，其中 1 人" in out.text
    await chat.tap("按入会渠道")
    out = await chat.say("驿站 12 号!")
    assert "只能用字母、数字" in out.text
    out = await chat.say("station-12")
    assert "入会渠道：station-12" in out.text and "符合的会员 5 人，其中 1 人" in out.text
    await chat.tap("按入会日期")
    out = await chat.say("2026-08-15")
    assert "符合的会员 4 人，其中 1 人" in out.text
    await chat.tap("按语言")
    out = await chat.tap("中文")
    expected = [
        p
        for p in people
        if p["work_kind"] == "courier"
        and p["source"] == "station-12"
        and p["joined"] >= date(2026, 8, 15)
        and p.get("lang", "zh_CN") == "zh_CN"
    ]
    muted = sum(1 for p in expected if p.get("muted"))
    assert (len(expected), muted) == (3, 1)
    assert f"符合的会员 {len(expected)} 人，其中 {muted} 人" in out.text
    async with app.db.transaction() as tx:
        segment = broadcasts.Segment(
            work_kind="courier", station="station-12", joined_since=date(2026, 8, 15), lang="zh_CN"
        )
        assert await broadcasts.audience(app, tx, segment) == broadcasts.Audience(members=3, muted=1)
    preview = await chat.tap("看预览")
    assert "实际发给 2 人" in preview.text
    out = await chat.tap("现在发送")
    [b] = await the_broadcasts(app)
    assert broadcasts.Segment.from_json(b.segment) == segment and (b.recipients, b.skipped_muted) == (2, 1)
    # Clearing the conditions brings everyone back.
    await chat.say("发布通知")
    await chat.say(TEXT)
    await chat.tap("不配图片")
    await chat.tap("不加报名")
    await chat.tap("按平台")
    out = await chat.tap("饿了么")
    assert "符合的会员 1 人" in out.text
    out = await chat.tap("清空条件")
    assert "现在是发给全部会员" in out.text and "符合的会员 8 人" in out.text


async def test_nobody_to_send_to_offers_no_send(desk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    await add_member(app, 1, muted=True)
    chat = (await broadcaster(desk, tmp_path)).chat
    await chat.say("发布通知")
    await chat.say(TEXT)
    await chat.tap("不配图片")
    await chat.tap("不加报名")
    out = await chat.tap("看预览")
    assert "现在没有会员会收到这条通知" in out.text
    assert "现在发送" not in chat.labels() and "定时发送" not in chat.labels()


async def test_changing_a_part_comes_back_to_the_preview(desk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    await add_member(app, 1)
    d = await broadcaster(desk, tmp_path)
    chat = d.chat
    await chat.say("发布通知")
    await chat.say("第一稿")
    await d.photo(png())
    await chat.tap("不加报名")
    first = await chat.tap("看预览")
    assert "第一稿" in first.text and first.image is not None
    await chat.tap("修改")
    out = await chat.tap("改内容")
    assert "替换原来的" in out.text
    out = await chat.say("第二稿")
    assert "第二稿" in out.text and "第一稿" not in out.text and out.image == first.image
    await chat.tap("修改")
    await chat.tap("改图片")
    out = await chat.tap("不配图片")
    assert out.image is None and "第二稿" in out.text
    out = await chat.tap("不发了")
    assert "什么都没有保存" in out.text and await the_broadcasts(app) == []


# -- who may -----------------------------------------------------------------------------------------------
async def test_nobody_else_can_enter_or_learn_what_it_does(desk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = desk
    member = Chat(dispatcher, user="m")
    await join(member)
    stranger = Chat(dispatcher, user="stranger")
    for chat in (member, stranger):
        for way in ("发布通知", "send a notice", "/notice", "/mynotices"):
            out = await (chat.command(way) if way.startswith("/") else chat.say(way))
            assert "只对工会工作人员开放" in out.text
            assert "通知" not in out.text.replace("工会通知", "") and "发布" not in out.text
            assert "发布通知" not in chat.labels() and "我的通知" not in chat.labels()
    async with app.db.transaction() as tx:
        await tx.staff.add("console:counsellor", "counsellor", "王老师", NOW)
    staffer = Chat(dispatcher, user="counsellor")
    await staffer.command("/staff")
    assert "发布通知" not in staffer.labels()
    out = await staffer.command("/notice")
    assert "通知发布员" in out.text and "没有开通" in out.text and "先写通知内容" not in out.text
    assert await the_broadcasts(app) == []


async def test_an_admin_has_the_tools(desk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chat = (await broadcaster(desk, tmp_path, role="admin")).chat
    await chat.command("/staff")
    assert "发布通知" in chat.labels() and "我的通知" in chat.labels()


# -- 我的通知 ------------------------------------------------------------------------------------------
async def test_my_notices_report_pause_resume_cancel(desk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    for n in range(1, 4):
        await add_member(app, n)
    d = await broadcaster(desk, tmp_path)
    chat = d.chat
    out = await chat.command("/mynotices")
    assert "还没有发过通知" in out.text
    await chat.say("发布通知")
    await chat.say(TEXT)
    await chat.tap("不配图片")
    await chat.tap("不加报名")
    await chat.tap("看预览")
    await chat.tap("现在发送")
    # Another broadcaster's notice is not in my list.
    async with app.db.transaction() as tx:
        other = await broadcasts.create(app, tx, text="别人的", segment=broadcasts.Segment(), created_by="console:x")
    await chat.command("/staff")
    out = await chat.tap("我的通知")
    assert f"#1 {TEXT[:15]}… · 正在发送 · 送达 0/3" in chat.labels()
    assert not any(f"#{other.id}" in x for x in chat.labels())
    out = await chat.tap("#1")
    assert "通知 #1：正在发送" in out.text and "应发 3 人" in out.text and "还没发 3" in out.text
    assert "发给：全部会员" in out.text
    out = await chat.tap("暂停发送")
    assert "暂停了" in out.text and "通知 #1：已暂停" in out.text and "继续发送" in chat.labels()
    out = await chat.tap("继续发送")
    assert "继续发送了" in out.text and "通知 #1：正在发送" in out.text
    await deliver(app, 1)
    out = await chat.tap("刷新")
    assert "已经发完" in out.text and "送达 3" in out.text and "暂停发送" not in chat.labels()
    # A stale button on a notice that has moved on is answered, not acted on.
    async with app.db.transaction() as tx:
        await broadcasts.start(app, tx, other.id, by="console:x", background=False)
    async with app.db.transaction() as tx:
        await tx.staff.add("console:boss2", "admin", "管理员", NOW)
    admin = Chat(d.chat.dispatcher, user="boss2")
    await admin.command("/mynotices")
    assert any(f"#{other.id}" in x for x in admin.labels())  # an admin sees everyone's
    await admin.tap(f"#{other.id}")
    report = admin.last
    await admin.tap("取消发送")
    assert "取消了" in admin.last.text and "已取消" in admin.last.text
    out = await admin.tap("暂停发送", report)  # from the message before: stale
    assert "已经过期" in out.text
    async with app.db.transaction() as tx:
        assert (await broadcasts.report(app, tx, other.id)).state == broadcasts.CANCELLED


@pytest.mark.parametrize(
    ("typed", "local"),
    [
        ("2026-12-05 09:00", "2026-12-05 09:00"),
        ("12月5日 9:00", "2026-12-05 09:00"),
        ("12月5日下午3点", "2026-12-05 15:00"),
        ("明天下午3点半", "2026-12-02 15:30"),
        ("明天 9：00", "2026-12-02 09:00"),
        ("Tomorrow 9am", "2026-12-02 09:00"),
        ("today 18:00", "2026-12-01 18:00"),
        ("abc", None),
        ("明天", None),
        ("9:00", None),
        ("2026-13-01 09:00", None),
        ("明天 25:00", None),
    ],
)
async def test_times_typed_for_scheduling(desk, typed: str, local: str | None) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from bot.flows.compose import local_moment

    app, _ = desk
    at = local_moment(SimpleNamespace(app=app, now=NOW), typed)  # type: ignore[arg-type]
    assert (broadcasts.local_time_text(app, at) if at else None) == local
