"""Joining on Telegram with nothing typed after /start, against a fake Bot API that refuses edits as
Telegram does: a message sent with a reply keyboard, or with its removal, can never be edited."""

from __future__ import annotations

import logging

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardRemove
from telegram.error import BadRequest

from bot.engine.messages import T
from bot.locale import Locale
from tests.fakes.telegram_api import CANT_EDIT, TOKEN, user_json
from tests.fakes.telegram_harness import webhook_bot

L = Locale()


def t(key: str, **ctx) -> str:  # type: ignore[no-untyped-def]
    return L.render("zh_CN", T(key, **ctx), channel="telegram")


@pytest.fixture
async def hook(bot):  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    async with webhook_bot(app, dispatcher) as client:
        yield client


def _labels(message: dict) -> list[str]:
    return [b["text"] for row in message.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


async def test_the_whole_join_by_taps_and_the_shared_contact(hook, fake, bot, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    rider = user_json(7101, first_name="张三")
    await hook.post(fake.text(rider, "/start"))
    await hook.post(fake.press(rider, "同意"))
    await hook.post(fake.contact(rider, "+86 138 0013 8101", owner_id=7101, first_name="张三"))

    # The reply keyboard is taken away by one message, and the offered name arrives as a button
    # of another, never by editing the first.
    *_, removal, choices = fake.sent(7101)
    assert t("join.ask_name_offered", name="张三") in removal["text"]
    assert "reply_markup" not in removal
    assert _labels(choices) == ["张三"]
    removing = [c for c in fake.requests("sendMessage") if c.params.get("reply_markup") == {"remove_keyboard": True}]
    assert [c.params["text"] for c in removing] == [removal["text"]]

    await hook.post(fake.press(rider, "张三"))
    # The pressed pointer reads as the choice made, its button gone.
    assert fake.messages[(7101, choices["message_id"])]["text"] == "👉 张三"
    assert _labels(fake.messages[(7101, choices["message_id"])]) == []
    assert t("join.ask_platform") in fake.sent(7101)[-1]["text"]

    await hook.post(fake.press(rider, "美团"))
    await hook.post(fake.press(rider, "外卖骑手"))
    assert t("join.confirm") in fake.labels(7101)
    await hook.post(fake.press(rider, "确认入会"))
    assert any(t("join.welcome_member") in m.get("text", "") for m in fake.sent(7101))

    async with bot[0].db.transaction() as tx:
        member = await tx.members.by_user_key("telegram:7101")
    assert member is not None and member.name == "张三" and member.platform == "美团"
    # Every call the bot made arrived; nothing was lost on the way.
    assert fake.requests(ok=False) == []
    assert not [r for r in caplog.records if "reply not sent" in r.getMessage()]


async def test_a_lead_in_carries_the_removal_and_the_question_keeps_its_buttons(hook, fake) -> None:  # type: ignore[no-untyped-def]
    rider = user_json(7102, first_name="李四")
    await hook.post(fake.text(rider, "/start"))
    await hook.post(fake.press(rider, "同意"))
    # Leaving the phone step by /cancel: "cancelled" and the main menu's question in one answer.
    await hook.post(fake.text(rider, "/cancel"))
    *_, removal, question = fake.sent(7102)
    assert removal["text"] == t("engine.cancelled")
    assert t("menu.prompt") in question["text"] and _labels(question)
    assert fake.requests(ok=False) == []


async def test_the_fake_refuses_edits_as_telegram_does(fake) -> None:  # type: ignore[no-untyped-def]
    inline = InlineKeyboardMarkup([[InlineKeyboardButton("好", callback_data="0a|ok")]])
    async with Bot(TOKEN, base_url=fake.api_url) as tg:
        removed = await tg.send_message(7103, "收到", reply_markup=ReplyKeyboardRemove())
        for edit in (
            tg.edit_message_reply_markup(7103, removed.message_id, reply_markup=inline),
            tg.edit_message_text("改一下", 7103, removed.message_id),
        ):
            with pytest.raises(BadRequest, match="can't be edited"):
                await edit
        plain = await tg.send_message(7103, "请选择", reply_markup=inline)
        with pytest.raises(BadRequest, match="not modified"):
            await tg.edit_message_text("请选择", 7103, plain.message_id, reply_markup=inline)
        await tg.edit_message_text("请选择 👉 好", 7103, plain.message_id)
    assert [c.status for c in fake.requests() if c.method.startswith("edit")] == [400, 400, 400, 200]
    assert {c.method for c in fake.requests(ok=False)} == {"editMessageReplyMarkup", "editMessageText"}
    assert CANT_EDIT.endswith("message can't be edited")
