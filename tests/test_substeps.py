"""Sub-steps (`turn.call` / `turn.done`) and the date picker, through the real dispatcher on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from bot.config import Settings
from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.engine.flow import Flow, Turn
from bot.runtime import running_bot
from bot.validation import calendar_date
from tests.chat import Chat
from tests.test_forms import session_of, with_flows

# A flow that asks for a day through the picker and shows what came back, keeping data of its own.
trip = Flow("trip", commands=("trip",))


@trip.start
async def start_trip(turn: Turn, payload: str) -> None:
    turn.data["mine"] = "kept"
    await turn.call("pick_date", then="got", prompt="formtest.ask_day", not_future=True, not_before="2026-01-01")


@trip.ask("got")
async def ask_got(turn: Turn) -> None:
    turn.say("formtest.got", day=turn.data["day"])


@trip.on("got")
async def on_got(turn: Turn) -> None:
    if turn.returned == "pick_date":
        turn.data["day"] = turn.result
    else:
        turn.retry("formtest.got_hint")


@pytest.fixture
async def bot(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[BotContext, Dispatcher]]:
    async with running_bot(settings) as (app, dispatcher):
        await with_flows(app, tmp_path, trip)
        yield app, dispatcher


async def test_the_picked_date_comes_back_to_the_caller(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    asked = await chat.command("/trip")
    assert "哪天的事" in asked.text and "11月28日" in asked.text
    assert chat.labels() == ["今天（11月28日）", "昨天（11月27日）"]
    inside = await session_of(app)
    assert (inside.flow, inside.step) == ("pick_date", "date")
    assert inside.data["_caller"] == {"flow": "trip", "step": "got", "data": {"mine": "kept"}}
    back = await chat.tap("昨天")
    assert "选好了：2026-11-27" in back.text
    session = await session_of(app)
    assert (session.flow, session.step) == ("trip", "got")
    assert session.data == {"mine": "kept", "day": "2026-11-27"}


@pytest.mark.parametrize(
    ("typed", "day"),
    [("2026-11-20", "2026-11-20"), ("11月20日", "2026-11-20"), ("11-20", "2026-11-20"), ("今天", "2026-11-28")],
)
async def test_a_typed_date_comes_back(bot, typed: str, day: str) -> None:  # type: ignore[no-untyped-def]
    _app, dispatcher = bot
    chat = Chat(dispatcher)
    await chat.command("/trip")
    assert f"选好了：{day}" in (await chat.say(typed)).text


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("2026-11-29", "还没到"),  # not in the future
        ("2025-12-31", "不能早于 2026年1月1日"),  # not before the bound
        ("11月31日", "没认出来"),
        ("下周三", "没认出来"),
        ("", "没认出来"),
    ],
)
async def test_a_date_out_of_bounds_or_unreadable_keeps_the_picker(bot, typed: str, says: str) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await chat.command("/trip")
    before = await session_of(app)
    out = await chat.say(typed)
    assert says in out.text and "哪天的事" in out.text  # the reason, then the question again
    after = await session_of(app)
    assert (after.flow, after.step, after.data) == ("pick_date", "date", before.data)


async def test_cancel_inside_the_sub_step_leaves_cleanly(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await chat.command("/trip")
    out = await chat.command("/cancel")
    assert "已经取消" in out.text
    session = await session_of(app)
    assert session.flow == "menu" and session.data == {}  # neither the caller's place nor its data
    # An old picker button does nothing now.
    stale = await chat.tap("今天", message=chat.history[0])
    assert "选好了" not in stale.text and (await session_of(app)).flow == "menu"


async def test_the_call_survives_a_restart(settings: Settings, tmp_path: Path) -> None:
    async with running_bot(settings) as (app, dispatcher):
        await with_flows(app, tmp_path / "first", trip)
        await Chat(dispatcher).command("/trip")
    async with running_bot(settings) as (app, dispatcher):
        await with_flows(app, tmp_path / "second", trip)
        back = await Chat(dispatcher).say("11月1日")
        assert "选好了：2026-11-01" in back.text
        assert (await session_of(app)).data == {"mine": "kept", "day": "2026-11-01"}


async def test_the_picker_entered_on_its_own_just_ends(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await chat.command("/start", "pick_date")
    assert (await session_of(app)).flow == "pick_date"
    out = await chat.tap("今天")
    assert out.text.strip() and (await session_of(app)).flow == "menu"


async def test_bounds_hide_the_buttons_they_forbid(bot) -> None:  # type: ignore[no-untyped-def]
    _app, dispatcher = bot
    early = Flow("early")

    @early.start
    async def start(turn: Turn, payload: str) -> None:
        await turn.call("pick_date", then="got", not_before="2026-11-28")

    early.asks["got"], early.handlers["got"] = ask_got, on_got
    dispatcher.app.flows["early"] = early
    chat = Chat(dispatcher)
    await chat.command("/start", "early")
    assert chat.labels() == ["今天（11月28日）"]  # yesterday is before the bound


def test_calendar_date_reads_what_riders_type() -> None:
    today = date(2026, 1, 2)
    assert calendar_date("2026-11-28", today) == date(2026, 11, 28)
    assert calendar_date("２０２６年１１月２８日", today) == date(2026, 11, 28)
    assert calendar_date("11月28号", today) == date(2026, 11, 28)
    assert calendar_date("11 / 28", today) == date(2026, 11, 28)
    assert calendar_date("12-30", today, past=True) == date(2025, 12, 30)  # the latest 30 December
    assert calendar_date("昨天", today) == date(2026, 1, 1)
    assert calendar_date("Yesterday", today) == date(2026, 1, 1)
    for wrong in ("", "2-30", "13-01", "1128", "11月", "abc", "3000-01-01", "2026-11-28 extra"):
        assert calendar_date(wrong, today) is None, wrong
