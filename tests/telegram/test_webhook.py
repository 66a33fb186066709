"""The Telegram channel by webhook, over real HTTP both ways: updates posted to the bot's ASGI app
under uvicorn, the bot's answers sent to the fake Bot API server on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from bot.locale import Locale
from tests.fakes.telegram_api import user_json
from tests.fakes.telegram_harness import SECRET, webhook_bot

ZH = Locale()


def t(key: str, lang: str = "zh_CN", **ctx) -> str:  # type: ignore[no-untyped-def]
    return ZH.text(lang, key, **ctx)


@pytest.fixture
async def hook(bot):  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    async with webhook_bot(app, dispatcher) as client:
        yield client


async def session_of(app, user_id: int):  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return await tx.sessions.get(f"telegram:{user_id}")


async def test_wrong_or_missing_secret_is_refused_and_nothing_happens(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    user = user_json(501)
    assert (await hook.post(fake.text(user, "/start"), secret=None)).status_code == 403
    assert (await hook.post(fake.text(user, "/start"), secret="guess")).status_code == 403
    assert fake.requests("sendMessage") == []
    assert await session_of(bot[0], 501) is None
    assert (await hook.http.get("/healthz")).text == "ok"


async def test_right_secret_processes_the_update(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    user = user_json(502)
    response = await hook.post(fake.text(user, "/start"))
    assert response.status_code == 200
    [sent] = fake.requests("sendMessage")
    assert sent.params["chat_id"] == 502
    assert t("join.welcome", union="湖滨新就业形态联合工会") in sent.params["text"]
    labels = [b["text"] for row in sent.params["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == [t("join.agree"), t("join.decline")]
    assert (await session_of(bot[0], 502)).step == "consent"


async def test_bad_json_is_a_400(hook) -> None:  # type: ignore[no-untyped-def]
    response = await hook.http.post(
        "/telegram/webhook", content=b"{not json", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
    )
    assert response.status_code == 400


async def test_redelivered_update_has_no_second_effect(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    user = user_json(503)
    update = fake.text(user, "/start")
    await hook.post(update)
    await hook.post(update)
    assert len(fake.requests("sendMessage")) == 1
    assert (await session_of(bot[0], 503)).version == 1


async def test_a_button_pressed_twice_quickly_has_one_effect(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    user = user_json(504)
    await hook.post(fake.text(user, "/start"))
    first, second = fake.press(user, "同意"), fake.press(user, "同意")
    responses = await asyncio.gather(hook.post(first), hook.post(second))
    assert [r.status_code for r in responses] == [200, 200]
    # Both taps answered (no spinner left), one step taken, one question asked.
    assert len(fake.requests("answerCallbackQuery")) == 2
    asks = [c for c in fake.requests("sendMessage") if t("join.ask_phone") in c.params["text"]]
    assert len(asks) == 1
    assert not any(t("engine.stale_button") in c.params["text"] for c in fake.requests("sendMessage"))
    session = await session_of(bot[0], 504)
    assert (session.flow, session.step) == ("join", "phone")


async def test_a_press_on_an_old_message_gets_the_current_step(hook, fake) -> None:  # type: ignore[no-untyped-def]
    user = user_json(505)
    await hook.post(fake.text(user, "/start"))
    old = fake.last_with_buttons(505)
    await hook.post(fake.text(user, "同意"))  # answered by typing: the buttons above are now old
    await hook.post(fake.press(user, "不同意", message=old))
    last = fake.requests("sendMessage")[-1].params["text"]
    assert t("engine.stale_button") in last and t("join.ask_phone") in last


async def test_pressed_message_shows_the_choice_and_loses_its_buttons(hook, fake) -> None:  # type: ignore[no-untyped-def]
    user = user_json(506)
    await hook.post(fake.text(user, "/start"))
    consent = fake.last_with_buttons(506)
    await hook.post(fake.press(user, "同意"))
    [edit] = fake.requests("editMessageText")
    assert edit.params["message_id"] == consent["message_id"]
    assert edit.params["text"].endswith("👉 " + t("join.agree"))
    assert "reply_markup" not in fake.messages[(506, consent["message_id"])]


async def test_phone_step_shows_the_share_contact_keyboard_then_removes_it(hook, fake) -> None:  # type: ignore[no-untyped-def]
    user = user_json(507, first_name="张三")
    await hook.post(fake.text(user, "/start"))
    await hook.post(fake.press(user, "同意"))
    ask = fake.requests("sendMessage")[-1]
    keyboard = ask.params["reply_markup"]["keyboard"]
    assert keyboard == [[{"text": t("engine.request_contact"), "request_contact": True}]]
    await hook.post(fake.contact(user, "+8613800138007", owner_id=507, first_name="张三"))
    name_ask, choices = fake.requests("sendMessage")[-2:]
    assert name_ask.params["reply_markup"] == {"remove_keyboard": True}
    # The choices come in a message of their own: Telegram never lets the first one be edited.
    assert choices.params["reply_markup"]["inline_keyboard"][0][0]["text"] == "张三"
    assert fake.requests("editMessageReplyMarkup") == []


async def test_someone_elses_contact_is_refused_politely(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    user = user_json(508)
    await hook.post(fake.text(user, "/start"))
    await hook.post(fake.press(user, "同意"))
    await hook.post(fake.contact(user, "+8613900139000", owner_id=999, first_name="王五"))
    answer = fake.requests("sendMessage")[-1]
    assert t("join.contact_not_own") in answer.params["text"]
    assert answer.params["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    session = await session_of(bot[0], 508)
    assert session.step == "phone" and "phone" not in session.data


async def test_group_message_asks_for_a_private_chat_and_is_not_dispatched(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    user = user_json(509, lang="en")
    group = {"id": -100123, "type": "supergroup", "title": "骑手互助群"}
    update = fake.text(user, "/start@gigunion_test_bot join-station-3", chat=group)
    assert (await hook.post(update)).status_code == 200
    [sent] = fake.requests("sendMessage")
    assert sent.params["chat_id"] == -100123
    assert sent.params["text"] == t("telegram.private_only", "en")
    assert sent.params["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://t.me/gigunion_test_bot"
    assert sent.params["reply_parameters"]["message_id"] == update["message"]["message_id"]
    assert await session_of(bot[0], 509) is None


async def test_a_reply_that_cannot_be_sent_now_waits_in_the_outbox(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    user = user_json(510)
    fake.fail("sendMessage", 500)
    assert (await hook.post(fake.text(user, "/start"))).status_code == 200
    async with bot[0].db.transaction() as tx:
        assert await tx.outbox.counts() == {"pending": 1}
    # The channel's own sender delivers it: the same welcome, with its buttons.
    sent = await fake.wait_for(lambda: fake.requests("sendMessage", ok=True))
    assert t("join.agree") in str(sent[0].params["reply_markup"])


async def test_a_user_who_blocked_the_bot_is_marked_unreachable(hook, fake, bot) -> None:  # type: ignore[no-untyped-def]
    from tests.chat import Chat, join

    app, dispatcher = bot
    await join(Chat(dispatcher, user="511", channel="telegram"))
    fake.fail("sendMessage", 403)
    await hook.post(fake.text(user_json(511), "/menu"))
    async with app.db.transaction() as tx:
        member = await tx.members.by_user_key("telegram:511")
        [identity] = await tx.members.identities(member.id)
    assert identity.unreachable


async def test_photo_location_and_document_reach_the_flow_without_error(hook, fake) -> None:  # type: ignore[no-untyped-def]
    user = user_json(512)
    for update in (fake.photo(user, caption="票据"), fake.location(user, 30.25, 120.17), fake.document(user)):
        assert (await hook.post(update)).status_code == 200
    texts = [c.params["text"] for c in fake.requests("sendMessage")]
    assert len(texts) == 3 and not any(t("engine.sorry") in x for x in texts)
