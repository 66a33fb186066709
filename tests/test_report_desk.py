"""满意度通报 in the staff menu: who may ask, the month (typed or tapped, garbage and empty months
answered), the format; the report made by a job, not in the turn, and delivered to the staffer through
the outbox as a file (Telegram) or as a picture with its figures (WeChat), in the staffer's language.
A staffer who lost the role before the job ran gets nothing."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import AsyncIterator

import pytest
from PIL import Image
from sqlalchemy import select

from bot.config import Settings
from bot.engine.messages import Outgoing
from bot.runtime import running_bot
from bot.services.jobs import run_due
from storage.schema import jobs, outbox
from tests.chat import Chat
from tests.test_satisfaction_report import A, B, C, add

TOOL = "满意度通报"


@pytest.fixture
async def desk(settings: Settings) -> AsyncIterator:  # type: ignore[type-arg]
    """The bot without its job runner: the test runs the jobs itself, when it wants them run."""
    async with running_bot(settings, run_jobs=False) as pair:
        app, _ = pair
        await add(app, 20, A, score=4)
        await add(app, 4, B, score=1)
        await add(app, 8, C, score=3)
        yield pair


async def staffer(bot, user: str, role: str, channel: str = "telegram") -> Chat:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    async with app.db.transaction() as tx:
        await tx.staff.add(f"{channel}:{user}", role, "李老师", app.now())
    return Chat(dispatcher, channel=channel, user=user)


async def sent_to(app, user_key: str) -> list[Outgoing]:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        rows = (await tx.conn.execute(select(outbox.c.body).where(outbox.c.user_key == user_key))).all()
    return [Outgoing.from_json(json.loads(r.body)) for r in rows]


async def pending_jobs(app) -> int:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return len((await tx.conn.execute(select(jobs.c.id).where(jobs.c.kind == "satisfaction_report"))).all())


async def test_a_complaints_officer_gets_the_html_report_as_a_file(desk) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    chat = await staffer(desk, "1", "complaints")
    await chat.command("/staff")
    out = await chat.tap(TOOL)
    assert "哪个月" in out.text
    assert any("本月" in label for label in chat.labels()) and any("上月" in label for label in chat.labels())

    for garbage in ("下个月吧", "2026-13", "😀", "11"):
        out = await chat.say(garbage)
        assert "没看懂这个月份" in out.text and "哪个月" in out.text
    out = await chat.say("2025-01")
    assert "还没有任何点评" in out.text
    out = await chat.say("2026-11")
    assert "共有 32 条点评" in out.text
    assert len(chat.labels()) == 5  # html, csv, md, picture, back

    out = await chat.say("网页吧")  # not one of the choices
    assert "共有 32 条点评" in out.text
    out = await chat.tap("网页")
    assert "正在生成 2026-11 的通报" in out.text
    assert await sent_to(app, "telegram:1") == []  # made by the job, not in the turn
    assert await pending_jobs(app) == 1

    assert await run_due(app, runner_id="test") == 1
    (message,) = await sent_to(app, "telegram:1")
    assert "2026-11 的职工满意度情况通报做好了" in message.text
    assert message.document is not None
    name, data = message.document
    assert name == "satisfaction-2026-11.html"
    html = data.decode("utf-8")
    assert "职工满意度情况通报" in html and "&lt;5" in html
    pictures = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert pictures and Image.open(io.BytesIO(base64.b64decode(pictures[0]))).format == "PNG"
    assert await run_due(app, runner_id="test") == 0  # done once


async def test_csv_in_english_and_the_same_report_asked_twice_is_sent_once(desk) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    chat = await staffer(desk, "2", "admin")
    await chat.command("/lang")
    await chat.command("/report")
    await chat.say("2026-11")
    ask = chat.last
    await chat.tap("CSV")
    await chat.command("/report")
    await chat.say("2026-11")
    await chat.tap("CSV", ask)  # an old button: answered with the current step, not acted on twice
    await chat.tap("CSV")
    assert await pending_jobs(app) == 1
    await run_due(app, runner_id="test")
    (message,) = await sent_to(app, "telegram:2")
    assert message.document and message.document[0] == "satisfaction-2026-11.csv"
    assert "The 2026-11 workers' satisfaction report is ready" in message.text
    text = message.document[1].decode("utf-8-sig")
    assert text.startswith("Period,Company or service,Indicator,Measure,Value")
    assert f"2026-11,{B},,Reviews,<5" in text


async def test_on_wechat_a_picture_with_the_main_figures(desk) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    chat = await staffer(desk, "oSTAFF", "complaints", channel="wechat")
    await chat.command("/report")
    out = await chat.say("2026-11")
    assert "发不了文件" in out.text
    assert len(out.buttons) == 2  # the picture, and back
    out = await chat.say("1")
    assert "正在生成" in out.text
    await run_due(app, runner_id="test")
    (message,) = await sent_to(app, "wechat:oSTAFF")
    assert message.document is None and message.image is not None
    assert Image.open(io.BytesIO(message.image)).format == "PNG"
    assert (
        "点评 32 条" in message.text and f"{B}：<5 条" in message.text and "1. 劳动关系：平均 3.38 分" in message.text
    )
    assert f"{C}：不公布\n" in message.text and f"{A}：20 条，平均分 4.00 / 4.00" in message.text


async def test_who_may_ask(desk) -> None:  # type: ignore[no-untyped-def]
    _, dispatcher = desk
    stranger = Chat(dispatcher, channel="telegram", user="99")
    out = await stranger.command("/report")
    assert "只对工会工作人员开放" in out.text
    claims = await staffer(desk, "3", "claims")
    await claims.command("/staff")
    assert TOOL not in " ".join(claims.labels())
    out = await claims.command("/report")
    assert "哪个月" not in out.text


async def test_a_staffer_removed_before_the_job_runs_gets_nothing(desk) -> None:  # type: ignore[no-untyped-def]
    app, _ = desk
    chat = await staffer(desk, "4", "complaints")
    await chat.command("/report")
    await chat.say("2026-11")
    await chat.tap("Markdown")
    async with app.db.transaction() as tx:
        await tx.staff.remove("telegram:4")
    await run_due(app, runner_id="test")
    assert await sent_to(app, "telegram:4") == []
