"""The anonymous complaints desk in the chat: who sees it, the queue by status, a complaint with its
thread and pictures, each action confirmed and applied (triage, route, reply, close), garbage at every
step answered and the step kept, two staff at once (one wins, the other is told), in Chinese and in
English; and nothing about who wrote a complaint is ever shown."""

from __future__ import annotations

import io
from datetime import date

import pytest
from PIL import Image

from bot.services import complaints as service
from bot.services.media import store
from storage.complaints import Complaint
from tests.chat import Chat, join
from tests.test_claims_domain import NOW
from tests.test_complaints_domain import TEXT, draft

TOOL = "匿名投诉受理"
CONFIRM = "确认，执行"
DAY = date(2026, 11, 30)
GARBAGE = ("asdf", "🙂", "   ", "9999", "/nonsense")


@pytest.fixture(autouse=True)
def today_is_fixed(bot) -> None:  # type: ignore[no-untyped-def]
    """Turns happen at 10:00 on 2026-11-30 in Shanghai, so the days they store are known."""
    bot[0].now = lambda: NOW


async def staffer(bot, user: str, role: str = "complaints", name: str = "周老师") -> Chat:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    async with app.db.transaction() as tx:
        await tx.staff.add(f"telegram:{user}", role, name, app.now())
    return Chat(dispatcher, channel="telegram", user=user)


async def new_complaint(bot, *, pictures: int = 0, **changes) -> Complaint:  # type: ignore[no-untyped-def]
    app, _ = bot
    media_ids = []
    for i in range(pictures):
        out = io.BytesIO()
        Image.new("RGB", (8, 6), (40 * i, 100, 200)).save(out, "PNG")
        stored = await store(app.db, app.settings.media_path(), out.getvalue(), max_bytes=10**6, now=app.now())
        media_ids.append(stored.id)
    async with app.db.transaction() as tx:
        complaint, _ = await service.submit(app, tx, draft(media_ids=tuple(media_ids), **changes), DAY)
    return complaint


async def now(bot, complaint_id: str) -> Complaint:  # type: ignore[no-untyped-def]
    app, _ = bot
    async with app.db.transaction() as tx:
        found = await tx.complaints.get(complaint_id)
    assert found is not None
    return found


async def open_complaint(chat: Chat, complaint_id: str) -> str:
    await chat.command("/staff")
    await chat.tap(TOOL)
    return (await chat.tap(complaint_id)).text


async def garbage_keeps_the_step(chat: Chat, expect: str) -> None:
    """Every kind of garbage gets a polite answer and the same step again (its `expect` words)."""
    for junk in GARBAGE:
        out = await chat.say(junk)
        assert expect in out.text, (junk, out.text)
        assert "Traceback" not in out.text and "Error" not in out.text


# -- who sees it -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("role", "sees"), [("complaints", True), ("admin", True), ("claims", False),
                                            ("counsellor", False), ("broadcaster", False)])  # fmt: skip
async def test_only_complaints_officers_and_admin_have_the_tool(bot, role: str, sees: bool) -> None:  # type: ignore[no-untyped-def]
    chat = await staffer(bot, "1", role)
    await chat.command("/staff")
    assert (TOOL in chat.labels()) is sees
    out = await chat.command("/complaints")
    if sees:
        assert "没办结的匿名投诉共 0 件" in out.text
    else:
        assert "投诉受理专员" in out.text and "没有开通" in out.text


async def test_members_and_strangers_are_refused(bot) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = bot
    member = Chat(dispatcher, user="m")
    await join(member)
    for chat in (member, Chat(dispatcher, user="stranger")):
        out = await chat.command("/complaints")
        assert "只对工会工作人员开放" in out.text and "匿名投诉" not in out.text


# -- the queue ----------------------------------------------------------------------------------------------
async def test_the_queue_by_status_and_opening_by_id(bot) -> None:  # type: ignore[no-untyped-def]
    first = await new_complaint(bot)
    second = await new_complaint(bot, target_kind="union", target=None, category="union_service")
    app, _ = bot
    async with app.db.transaction() as tx:
        await service.route(app, tx, second.id, "legal", DAY)
    chat = await staffer(bot, "1")
    await chat.command("/staff")
    out = await chat.tap(TOOL)
    assert "没办结的匿名投诉共 2 件：新收到 1 件，已分类 0 件，已分流 1 件" in out.text
    assert any(first.id in label and "工资和扣款" in label and "美团" in label for label in chat.labels())
    assert not any(second.id in label for label in chat.labels())
    out = await chat.tap("看已分流的（1 件）")
    assert "“已分流”的 1 件" in out.text
    assert any(second.id in label and "工会服务" in label for label in chat.labels())
    await garbage_keeps_the_step(chat, "“已分流”的 1 件")
    out = await chat.say("abcdefghjkmn")  # looks like an id, is none
    assert "没有找到编号为 abcdefghjkmn 的投诉" in out.text and "“已分流”的 1 件" in out.text
    out = await chat.say(first.id.upper())  # typed from the CLI's list
    assert f"匿名投诉 {first.id} · 新收到" in out.text and TEXT in out.text
    out = await chat.tap("返回投诉列表")
    out = await chat.tap("返回工作人员菜单")
    assert TOOL in chat.labels()


async def test_a_complaint_in_full_shows_nothing_of_its_sender(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    rider = Chat(dispatcher, user="rider")
    await join(rider, phone="13800138000", name="张三丰")
    complaint = await new_complaint(bot, pictures=2)
    async with app.db.transaction() as tx:
        await service.add_from_worker(app, tx, complaint.id, "补充：站长姓王。", today=DAY)
    chat = await staffer(bot, "1")
    text = await open_complaint(chat, complaint.id)
    assert "投诉对象：美团" in text and "问题类别：工资和扣款" in text and "收到日期：2026-11-30" in text
    assert TEXT in text and "共有附图 2 张" in text
    assert "2026-11-30 职工补充：补充：站长姓王。" in text
    assert "2026-11-30 新收到" in text
    for identifying in ("张三丰", "13800138000", "rider", "console:", "telegram:", "会员"):
        assert identifying not in text
    out = await chat.tap("看附图（2 张）")
    assert out.image is not None and out.image.startswith(b"\x89PNG") and "附图 1/2" in out.text
    await garbage_keeps_the_step(chat, "请")
    out = await chat.tap("下一张")
    assert out.image is not None and "附图 2/2" in out.text
    out = await chat.tap("返回这件投诉")
    assert f"匿名投诉 {complaint.id}" in out.text


# -- the actions, with garbage at every step ------------------------------------------------------------------
async def test_triage_route_reply_close_with_garbage_at_every_step(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    complaint = await new_complaint(bot)
    chat = await staffer(bot, "1")
    await open_complaint(chat, complaint.id)
    await garbage_keeps_the_step(chat, f"匿名投诉 {complaint.id}")

    out = await chat.tap("确认或更正类别")
    assert "现在归在“工资和扣款”" in out.text
    await garbage_keeps_the_step(chat, "请")
    out = await chat.tap("平台规则和处罚")
    assert "确认把投诉" in out.text and "“平台规则和处罚”" in out.text
    await garbage_keeps_the_step(chat, "请")
    out = await chat.tap("修改")
    out = await chat.tap("平台规则和处罚")
    out = await chat.tap(CONFIRM)
    assert "✅ 办好了" in out.text and "已分类" in out.text
    assert (await now(bot, complaint.id)).category == "platform_rules"

    out = await chat.tap("分流给处理小组")
    assert "分流给哪个小组" in out.text and "法律援助组" in chat.labels()
    await garbage_keeps_the_step(chat, "分流给哪个小组")
    await chat.tap("企业联络组")
    out = await chat.tap(CONFIRM)
    assert "已分流" in out.text and "分流给：企业联络组" in out.text
    assert (await now(bot, complaint.id)).team == "company_liaison"

    out = await chat.tap("答复职工")
    assert "最多 1000 字" in out.text
    out = await chat.say("好")
    assert "答复太短了" in out.text
    out = await chat.say("字" * 1001)
    assert "1001 字，太长了" in out.text
    out = await chat.tap("返回这件投诉")
    assert f"匿名投诉 {complaint.id}" in out.text
    await chat.tap("答复职工")
    out = await chat.say("您好，我们已联系美团站点核实扣款，三个工作日内答复。")
    assert "确认给投诉" in out.text and "三个工作日内答复" in out.text
    out = await chat.tap(CONFIRM)
    assert "已答复" in out.text and "工会答复：您好，我们已联系美团站点核实扣款" in out.text
    async with app.db.transaction() as tx:
        thread = await service.thread(app, tx, complaint.id)
    assert [m.author for m in thread] == ["union"]

    out = await chat.tap("办结")
    assert "以什么结果办结" in out.text and "部分解决" in chat.labels()
    await garbage_keeps_the_step(chat, "以什么结果办结")
    out = await chat.tap("已解决")
    assert "确认以“已解决”办结" in out.text and "365 天后" in out.text
    out = await chat.tap(CONFIRM)
    assert "已办结" in out.text and "办结结果：已解决" in out.text
    assert not any(a in chat.labels() for a in ("答复职工", "办结", "分流给处理小组"))
    await garbage_keeps_the_step(chat, f"匿名投诉 {complaint.id}")
    done = await now(bot, complaint.id)
    assert (done.status, done.outcome, done.closed_on) == ("closed", "resolved", DAY)
    async with app.db.transaction() as tx:
        audited = [e.action for e in await tx.audit.entries()]
    assert {"complaint.triage", "complaint.route", "complaint.reply", "complaint.close"} <= set(audited)


async def test_two_staff_at_once_one_wins_the_other_is_told(bot) -> None:  # type: ignore[no-untyped-def]
    complaint = await new_complaint(bot)
    zhou = await staffer(bot, "1")
    wu = await staffer(bot, "2", name="吴老师")
    for chat in (zhou, wu):
        await open_complaint(chat, complaint.id)
        await chat.tap("分流给处理小组")
    await zhou.tap("法律援助组")
    await wu.tap("工会办公室")
    out = await zhou.tap(CONFIRM)
    assert "✅ 办好了" in out.text
    out = await wu.tap(CONFIRM)
    assert "⚠️ 没有执行" in out.text and "刚刚被别人处理过" in out.text
    assert "分流给：法律援助组" in out.text  # shown as it is now
    assert (await now(bot, complaint.id)).team == "legal"


async def test_a_worker_adding_meanwhile_makes_the_staffer_look_again(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    complaint = await new_complaint(bot)
    chat = await staffer(bot, "1")
    await open_complaint(chat, complaint.id)
    await chat.tap("答复职工")
    await chat.say("请问是哪个站点？")
    async with app.db.transaction() as tx:
        await service.add_from_worker(app, tx, complaint.id, "是朝阳区望京站。", today=DAY)
    out = await chat.tap(CONFIRM)
    assert "⚠️ 没有执行" in out.text and "是朝阳区望京站。" in out.text
    async with app.db.transaction() as tx:
        assert [m.author for m in await service.thread(app, tx, complaint.id)] == ["worker"]


async def test_a_complaint_deleted_meanwhile(bot) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    complaint = await new_complaint(bot)
    chat = await staffer(bot, "1")
    await open_complaint(chat, complaint.id)
    async with app.db.transaction() as tx:
        await service.close(app, tx, complaint.id, "resolved", DAY)
    assert await service.purge_closed(app, date(2027, 1, 1)) == 1
    out = await chat.tap("答复职工")
    assert "已经找不到了" in out.text and chat.labels() == ["返回投诉列表"]
    await garbage_keeps_the_step(chat, "已经找不到了")
    out = await chat.tap("返回投诉列表")
    assert "没办结的匿名投诉共 0 件" in out.text


async def test_in_english(bot) -> None:  # type: ignore[no-untyped-def]
    complaint = await new_complaint(bot, category="hours")
    chat = Chat(bot[1], channel="telegram", user="3", language_hint="en")
    app, _ = bot
    async with app.db.transaction() as tx:
        await tx.staff.add("telegram:3", "complaints", "Zhou", app.now())
    await chat.command("/lang", "en")
    out = await chat.command("/complaints")
    assert "1 anonymous complaint not yet closed: 1 new" in out.text
    await garbage_keeps_the_step(chat, "Below: 1 new")
    out = await chat.tap(complaint.id)
    assert f"Anonymous complaint {complaint.id} · new" in out.text and "Category: working hours" in out.text
    assert "About: 美团" in out.text and "No messages yet." in out.text
    await garbage_keeps_the_step(chat, f"Anonymous complaint {complaint.id}")
    out = await chat.tap("Route to a team")
    await garbage_keeps_the_step(chat, "Which team should handle")
    await chat.tap("Legal aid team")
    out = await chat.tap("Yes, do it")
    assert "✅ Done" in out.text and "Routed to: Legal aid team" in out.text
    out = await chat.tap("Reply to the worker")
    out = await chat.say("x")
    assert "too short" in out.text
    out = await chat.say("We have called the station and will write again within three days.")
    assert "Send this reply" in out.text
    await garbage_keeps_the_step(chat, "Send this reply")
    out = await chat.tap("Yes, do it")
    assert "answered" in out.text and "union: We have called the station" in out.text
    out = await chat.tap("Close")
    await garbage_keeps_the_step(chat, "How did complaint")
    out = await chat.tap("partly resolved")
    assert "in 365 days its text and messages are deleted" in out.text
    out = await chat.tap("Yes, do it")
    assert "Outcome: partly resolved (2026-11-30)" in out.text
    out = await chat.tap("Back to the complaints list")
    assert "0 anonymous complaints not yet closed" in out.text
    out = await chat.tap("See closed (1)")
    assert "Below: 1 closed" in out.text
