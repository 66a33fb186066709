"""Forms (`bot.engine.forms`) and the start-up check of steps (`bot.engine.checks`), through the real
dispatcher on a real SQLite file, with a small order form that uses every kind of field."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.engine.checks import FlowCheckError, check_flows
from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.engine.flow import Flow, Turn
from bot.engine.forms import Field, Form, FormError
from bot.engine.messages import Kind, Media, Request, T
from bot.locale import LOCALES_DIR, Locale
from bot.privacy import mask_phone
from bot.runtime import running_bot
from bot.validation import mainland_mobile, short_answer
from storage.sessions import Session
from tests.chat import Chat

# Noon in Hangzhou on 28 November 2026: "today" for the date picker.
NOW = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)

TEST_WORDS = {
    "zh_CN": """
ask_kind = "您是骑手还是司机？"
rider = "骑手"
driver = "司机"
kind = "身份"
kind_invalid = "请选“骑手”或“司机”。"
ask_plate = "请输入车牌号。"
plate = "车牌"
ask_phone = "请留个手机号。"
phone = "手机号"
ask_day = "哪天的事？"
day = "日期"
sent = "已提交。"
got = "选好了：{{ day }}"
got_hint = "这一步只等日期。"
""",
    "en": """
ask_kind = "Rider or driver?"
rider = "Rider"
driver = "Driver"
kind = "Role"
kind_invalid = "Please choose rider or driver."
ask_plate = "Your plate number?"
plate = "Plate"
ask_phone = "Your phone?"
phone = "Phone"
ask_day = "Which day?"
day = "Date"
sent = "Sent."
got = "Picked: {{ day }}"
got_hint = "This step only waits for a date."
""",
}

submitted: list[dict[str, Any]] = []

order = Flow("order", commands=("order",))


@order.start
async def start_order(turn: Turn, payload: str) -> None:
    await form.start(turn)


async def ask_kind(turn: Turn) -> None:
    turn.say("formtest.ask_kind")
    turn.button(T("formtest.rider"), "rider")
    turn.button(T("formtest.driver"), "driver")


async def send_order(turn: Turn) -> None:
    submitted.append(form.values(turn.data))
    turn.say("formtest.sent")
    turn.finish()


form = Form(
    order,
    [
        Field(
            "kind",
            ask=ask_kind,
            pick=lambda turn, choice: choice if choice in ("rider", "driver") else None,
            invalid="formtest.kind_invalid",
            label="formtest.kind",
            show=lambda turn: T(f"formtest.{turn.data['kind']}"),
        ),
        Field(
            "plate",
            ask="formtest.ask_plate",
            parse=short_answer,
            when=lambda data: data.get("kind") == "driver",
            label="formtest.plate",
        ),
        Field(
            "phone",
            ask="formtest.ask_phone",
            parse=mainland_mobile,
            invalid="join.phone_invalid",
            request=Request.CONTACT,
            label="formtest.phone",
            show=lambda turn: mask_phone(turn.data["phone"]),
        ),
        Field(
            "day",
            ask="formtest.ask_day",
            call="pick_date",
            call_args=lambda turn: {"not_future": True, "not_before": "2026-01-01"},
            label="formtest.day",
        ),
    ],
    on_confirm=send_order,
)


def locale_with_test_words(folder: Path) -> Locale:
    """The real sentences plus this file's, in a copy, so no test words reach the bot's own catalogue."""
    shutil.copytree(LOCALES_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for lang, words in TEST_WORDS.items():
        (folder / lang / "formtest.toml").write_text(words, "utf-8")
    return Locale(folder)


async def with_flows(app: BotContext, tmp_path: Path, *flows: Flow) -> None:
    app.locale = locale_with_test_words(tmp_path / "locales")
    app.flows.update({f.name: f for f in flows})
    app.now = lambda: NOW
    check_flows(app.flows)  # the test flows pass the start-up check too


@pytest.fixture
async def bot(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[BotContext, Dispatcher]]:
    async with running_bot(settings) as (app, dispatcher):
        await with_flows(app, tmp_path, order)
        submitted.clear()
        yield app, dispatcher


async def session_of(app: BotContext, user_key: str = "console:alice") -> Session:
    async with app.db.transaction() as tx:
        session = await tx.sessions.get(user_key)
    assert session is not None
    return session


async def to_summary(chat: Chat, kind: str = "骑手") -> None:
    await chat.command("/order")
    await chat.tap(kind)
    if kind == "司机":
        await chat.say("浙A12345")
    await chat.contact("13800138000")
    await chat.tap("今天")


# -- order, skipping, summary ------------------------------------------------------------------------
async def test_a_field_whose_condition_is_false_is_skipped(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await chat.command("/order")
    asked = await chat.tap("骑手")
    assert "手机号" in asked.text and Request.CONTACT in asked.requests
    assert (await session_of(app)).step == "phone"
    await chat.contact("13800138000")
    summary = await chat.tap("今天")
    assert (await session_of(app)).step == "confirm"
    assert "身份：骑手" in summary.text and "日期：2026-11-28" in summary.text
    assert "车牌" not in summary.text and not any("车牌" in label for label in chat.labels())
    assert chat.labels() == ["✅ 确认提交", "改身份", "改手机号", "改日期"]


async def test_a_field_whose_condition_holds_is_asked(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await chat.command("/order")
    asked = await chat.tap("司机")
    assert "车牌" in asked.text and (await session_of(app)).step == "plate"
    await chat.say("浙A12345")
    await chat.contact("13800138000")
    await chat.tap("今天")
    assert "车牌：浙A12345" in chat.last.text and "改车牌" in chat.labels()
    await chat.tap("确认提交")
    assert submitted == [{"kind": "driver", "plate": "浙A12345", "phone": "13800138000", "day": "2026-11-28"}]


async def test_the_summary_masks_what_is_personal(bot) -> None:  # type: ignore[no-untyped-def]
    _app, dispatcher = bot
    chat = Chat(dispatcher)
    await to_summary(chat)
    assert "138****8000" in chat.last.text and "13800138000" not in chat.last.text


async def test_confirming_submits_the_answers_and_ends(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await to_summary(chat)
    done = await chat.tap("确认提交")
    assert "已提交" in done.text
    assert submitted == [{"kind": "rider", "phone": "13800138000", "day": "2026-11-28"}]
    assert (await session_of(app)).flow == "menu"


# -- changing one answer ------------------------------------------------------------------------------
async def test_changing_an_answer_returns_to_the_summary(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await to_summary(chat)
    asked = await chat.tap("改手机号")
    assert "手机号" in asked.text and (await session_of(app)).step == "phone"
    summary = await chat.say("13900139000")
    assert (await session_of(app)).step == "confirm"
    assert "139****9000" in summary.text and "身份：骑手" in summary.text


async def test_changing_a_date_goes_through_the_sub_step_and_back(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await to_summary(chat)
    picker = await chat.tap("改日期")
    assert "哪天的事" in picker.text and (await session_of(app)).flow == "pick_date"
    summary = await chat.say("11月20日")
    session = await session_of(app)
    assert (session.flow, session.step) == ("order", "confirm") and "_caller" not in session.data
    assert "日期：2026-11-20" in summary.text and "138****8000" in summary.text


async def test_a_change_that_needs_a_new_answer_asks_it_then_the_summary(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await to_summary(chat, "骑手")
    await chat.tap("改身份")
    plate = await chat.tap("司机")
    assert "车牌" in plate.text and (await session_of(app)).step == "plate"
    summary = await chat.say("浙A12345")
    assert (await session_of(app)).step == "confirm" and "车牌：浙A12345" in summary.text
    # Back to rider: the plate no longer applies, so it is neither shown nor submitted.
    await chat.tap("改身份")
    summary = await chat.tap("骑手")
    assert "车牌" not in summary.text
    await chat.tap("确认提交")
    assert submitted == [{"kind": "rider", "phone": "13800138000", "day": "2026-11-28"}]


# -- bad input at every step -------------------------------------------------------------------------
GARBAGE = ["", "   ", "😀🙏🔥", "x" * 300, "13", "stale-button", "photo", "location", "someone-elses-contact"]


async def walk_to(chat: Chat, step: str) -> None:
    await chat.command("/order")
    if step == "kind":
        return
    await chat.tap("司机")
    if step == "plate":
        return
    await chat.say("浙A12345")
    if step == "phone":
        return
    await chat.contact("13800138000")
    if step == "date":
        return
    await chat.tap("今天")


@pytest.mark.parametrize("step", ["kind", "plate", "phone", "date", "confirm"])
@pytest.mark.parametrize("garbage", GARBAGE)
async def test_garbage_gets_a_retry_and_the_step_stays(bot, step: str, garbage: str) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, channel="telegram", user="7")
    await walk_to(chat, step)
    prompt, first = chat.last, chat.history[0]
    before = await session_of(app, "telegram:7")
    if garbage == "stale-button":
        out = (
            await chat.tap(0, message=first)
            if step != "kind"
            else await chat.send(chat.incoming(Kind.BUTTON, payload="zz|rider"))
        )
    elif garbage == "photo":
        out = await chat.send(chat.incoming(Kind.PHOTO, media=Media("file-1")))
    elif garbage == "location":
        out = await chat.send(chat.incoming(Kind.LOCATION, location=(30.25, 120.17)))
    elif garbage == "someone-elses-contact":
        out = await chat.contact("13900139000", owner="999")
    else:
        out = await chat.say(garbage)
    after = await session_of(app, "telegram:7")
    if step == "plate" and garbage == "13":
        # "13" is a possible (if short) plate: the form moves on, as it should.
        assert after.step == "phone"
        return
    assert (after.flow, after.step, after.data) == (before.flow, before.step, before.data)
    assert out.text.strip() and out.text != prompt.text and "Traceback" not in out.text
    assert submitted == []


# -- declaring a form wrongly fails when its module loads --------------------------------------------
def test_a_field_nobody_reads_is_refused() -> None:
    with pytest.raises(FormError, match=r"'x'.*nothing reads"):
        Form(Flow("f1"), [Field("x", ask="formtest.ask_plate", label="formtest.plate")], on_confirm=send_order)


def test_a_field_named_twice_is_refused() -> None:
    twice = [Field("x", ask="a.b", parse=short_answer, label="a.b")] * 2
    with pytest.raises(FormError, match="named twice"):
        Form(Flow("f2"), twice, on_confirm=send_order)


def test_a_field_needs_a_label_for_the_generic_summary() -> None:
    with pytest.raises(FormError, match="label"):
        Form(Flow("f3"), [Field("x", ask="a.b", parse=short_answer)], on_confirm=send_order)


# -- the start-up check --------------------------------------------------------------------------------
def typo_flow() -> Flow:
    flow = Flow("typo", commands=("typo",))

    @flow.start
    async def start(turn: Turn, payload: str) -> None:
        turn.goto("first")

    @flow.ask("first")
    async def ask_first(turn: Turn) -> None:
        turn.say("formtest.ask_plate")

    @flow.on("first")
    async def on_first(turn: Turn) -> None:
        turn.goto("secnod")  # the typo: the step is "second"

    @flow.ask("second")
    async def ask_second(turn: Turn) -> None:
        turn.say("formtest.ask_phone")

    @flow.on("second")
    async def on_second(turn: Turn) -> None:
        turn.finish()

    return flow


def test_a_goto_to_a_step_that_does_not_exist_is_refused() -> None:
    with pytest.raises(FlowCheckError) as refused:
        check_flows({"typo": typo_flow()})
    assert "flow 'typo'" in str(refused.value) and "step 'first'" in str(refused.value)
    assert "'secnod'" in str(refused.value)


async def _go_on(turn: Turn) -> None:
    turn.goto("nowhere")


def test_a_goto_in_a_helper_is_found() -> None:
    flow = typo_flow()

    async def on_first(turn: Turn) -> None:
        await _go_on(turn)

    flow.handlers["first"] = on_first
    with pytest.raises(FlowCheckError, match="'nowhere'"):
        check_flows({"typo": flow})


def test_other_flows_and_sub_steps_must_exist() -> None:
    flow = typo_flow()
    side = Flow("side")  # no entry: nothing can begin or call it

    @flow.on("second")
    async def on_second(turn: Turn) -> None:
        if turn.text == "a":
            await turn.begin("no_such_flow")
        elif turn.text == "b":
            await turn.call("side", then="second")
        else:
            await turn.call("typo", then="thrid")

    with pytest.raises(FlowCheckError) as refused:
        check_flows({"typo": flow, "side": side})
    message = str(refused.value)
    assert "'no_such_flow', which does not exist" in message
    assert "'side', which has no @flow.start" in message
    assert "'thrid'" in message


def test_an_ask_without_a_handler_is_refused() -> None:
    flow = typo_flow()
    del flow.handlers["second"]
    with pytest.raises(FlowCheckError, match="step 'second': it asks, but nothing handles"):
        check_flows({"typo": flow})


def test_the_bots_own_flows_are_checked_when_they_are_gathered(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bot.flows import all_flows, join

    assert "join" in all_flows()
    monkeypatch.delitem(join.flow.asks, "platform_other")
    with pytest.raises(FlowCheckError, match=r"flow 'join'.*'platform_other'"):
        all_flows()
