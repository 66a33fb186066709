"""The Telegram channel by long polling against the fake Bot API: a rider joins by taps alone after
scanning a join QR code, and the bot sets its command menu in both languages."""

from __future__ import annotations

import pytest

from bot.locale import Locale
from bot.services.membership import PRIVACY_NOTICE_VERSION
from tests.fakes.telegram_api import user_json
from tests.fakes.telegram_harness import polling_bot

L = Locale()


def t(key: str, **ctx) -> str:  # type: ignore[no-untyped-def]
    return L.text("zh_CN", key, **ctx)


@pytest.fixture
async def channel(bot):  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    async with polling_bot(app, dispatcher) as ch:
        yield ch


def texts_to(fake, chat_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.params["text"] for c in fake.requests("sendMessage", ok=True) if c.params["chat_id"] == chat_id]


async def test_join_by_taps_after_a_qr_deep_link_records_the_source(channel, fake, bot) -> None:  # type: ignore[no-untyped-def]
    rider = user_json(7001, first_name="张三")
    chat = 7001

    pushed: list[dict] = []

    async def push(update: dict) -> None:
        pushed.append(update)
        await fake.push(update)

    async def said(key: str, **ctx) -> None:  # type: ignore[no-untyped-def]
        await fake.wait_for(lambda: any(t(key, **ctx) in x for x in texts_to(fake, chat)))

    await push(fake.text(rider, "/start join-station-12"))
    await said("join.privacy", version=PRIVACY_NOTICE_VERSION)
    await fake.wait_for(lambda: t("join.agree") in fake.labels(chat))

    await push(fake.press(rider, "同意"))
    await said("join.ask_phone")

    await push(fake.contact(rider, "+86 138 0013 8000", owner_id=7001, first_name="张三"))
    await said("join.ask_name_offered", name="张三")
    # The offered-name button arrives in a message of its own, under that question.
    await fake.wait_for(lambda: "张三" in fake.labels(chat))

    await push(fake.press(rider, "张三"))
    await said("join.ask_platform")
    await fake.wait_for(lambda: "美团" in fake.labels(chat))

    await push(fake.press(rider, "美团"))
    await fake.wait_for(lambda: "外卖骑手" in fake.labels(chat))

    await push(fake.press(rider, "外卖骑手"))
    # The summary, with its confirm button.
    await fake.wait_for(lambda: t("join.confirm") in fake.labels(chat))

    await push(fake.press(rider, "确认入会"))
    await said("join.welcome_member")
    [photo] = fake.requests("sendPhoto", ok=True)
    assert photo.files["photo"].startswith(b"\x89PNG")

    # Every answer after /start was a tap or the shared contact: nothing typed.
    assert not [u for u in pushed[1:] if "text" in u.get("message", {})]
    async with bot[0].db.transaction() as tx:
        member = await tx.members.by_user_key("telegram:7001")
    assert member is not None
    assert (member.source, member.name, member.platform, member.work_kind) == (
        "station-12",
        "张三",
        "美团",
        "delivery_rider",
    )
    assert len(fake.requests("answerCallbackQuery")) == 5


async def test_command_menu_is_set_in_chinese_by_default_and_in_english(channel, fake) -> None:  # type: ignore[no-untyped-def]
    calls = fake.requests("setMyCommands", ok=True)
    by_lang = {c.params.get("language_code"): c.params["commands"] for c in calls}
    assert set(by_lang) == {None, "en"}
    zh = {c["command"]: c["description"] for c in by_lang[None]}
    en = {c["command"]: c["description"] for c in by_lang["en"]}
    assert zh["join"] == L.text("zh_CN", "telegram.cmd_join")
    assert en["menu"] == L.text("en", "telegram.cmd_menu")
    assert list(zh) == list(en) and {"menu", "join", "card", "help", "cancel", "lang"} <= set(zh)
    assert {"claim", "myclaims", "human"} <= set(zh)  # the claims flows and the way to a person


async def test_a_photo_is_kept_by_file_id_and_fetched_only_on_demand(channel, fake) -> None:  # type: ignore[no-untyped-def]
    from bot.handlers.telegram import fetch_file

    fake.files["photo-1280"] = b"\xff\xd8 a receipt"
    await fake.push(fake.photo(user_json(7002)))
    await fake.wait_for(lambda: texts_to(fake, 7002))
    assert fake.requests("getFile") == []
    assert await fetch_file(channel.bot, "photo-1280") == b"\xff\xd8 a receipt"
    [get] = fake.requests("getFile")
    assert get.params["file_id"] == "photo-1280"
