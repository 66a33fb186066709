"""A rider who is stuck asks for a person ("人工", "客服", "human", "?") in any state and gets the
union's contact from the union profile, then the step they were on, asked again."""

from __future__ import annotations

import tomllib

import pytest

from bot.config import UnionProfile, default_profile
from bot.engine.messages import Request
from storage.sessions import Session
from tests.chat import Chat

WORDS = ["人工", "客服", "转人工", "找人工", "人工客服", "联系工会", "human", "Agent", "contact", "?", "？", " 人工 "]


async def session_of(app, user_key: str) -> Session | None:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        return await tx.sessions.get(user_key)


def has_contact(text: str, lang: str = "zh_CN") -> bool:
    profile = default_profile()
    assert profile.contact is not None
    return (
        profile.contact.phone in text
        and profile.contact.hours(lang) in text
        and all(s.name(lang) in text and s.address(lang) in text and s.hours(lang) in text for s in profile.stations)
    )


@pytest.mark.parametrize("word", WORDS)
async def test_the_words_at_the_menu_give_the_contact_and_the_menu(bot, word: str) -> None:  # type: ignore[no-untyped-def]
    chat = Chat(bot[1])
    menu = await chat.command("/menu")
    answer = await chat.say(word)
    assert has_contact(answer.text), answer.text
    assert chat.labels() == [b.label for b in menu.buttons]  # the menu, asked again
    assert "留着" not in answer.text  # nothing in progress to go back to


@pytest.mark.parametrize("word", ["人工", "客服", "?", "human"])
async def test_mid_join_the_contact_keeps_the_join_step(bot, word: str) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher)
    await chat.command("/start")
    asked_phone = await chat.tap("同意")
    answer = await chat.say(word)
    assert has_contact(answer.text), answer.text
    assert "您刚才办的事还给您留着" in answer.text
    assert answer.text.endswith(asked_phone.text.split("\n\n")[-1])  # the phone question again
    assert Request.CONTACT in answer.requests
    session = await session_of(app, "console:alice")
    assert (session.flow, session.step) == ("join", "phone")
    # The join carries on from there, and nothing given before was lost.
    asked_name = await chat.contact("13800138000")
    assert "姓名" in asked_name.text or "称呼" in asked_name.text
    assert (await session_of(app, "console:alice")).step == "name"


async def test_the_commands_keep_the_step_too(bot) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    chat = Chat(dispatcher, channel="telegram", user="42")
    await chat.command("/start")
    await chat.tap("同意")
    await chat.contact("13800138000")
    for command in ("/human", "/contact_union"):
        answer = await chat.command(command)
        assert has_contact(answer.text), answer.text
        assert (await session_of(app, "telegram:42")).step == "name"


async def test_in_english(bot) -> None:  # type: ignore[no-untyped-def]
    chat = Chat(bot[1], language_hint="en")
    await chat.command("/menu")
    answer = await chat.say("human")
    assert has_contact(answer.text, "en") and "Phone" in answer.text


async def test_on_wechat_the_contact_is_text_only(bot) -> None:  # type: ignore[no-untyped-def]
    chat = Chat(bot[1], user="oRider_human", channel="wechat")
    await chat.command("/start")
    await chat.say("1")  # agree: the phone question
    answer = await chat.say("人工")
    assert has_contact(answer.text), answer.text
    assert answer.image is None
    assert "分享" not in answer.text and "按钮" not in answer.text


@pytest.mark.parametrize(("lang", "said"), [("zh_CN", "人工"), ("en", "human")])
async def test_the_help_text_says_how_to_reach_a_person(bot, lang: str, said: str) -> None:  # type: ignore[no-untyped-def]
    chat = Chat(bot[1], language_hint=lang)
    await chat.command("/menu")
    help_ = await chat.say("帮助" if lang == "zh_CN" else "help")
    assert f"· {said} —" in help_.text
    assert ("联系工会工作人员" if lang == "zh_CN" else "a person at the union") in help_.text


def test_the_contact_table_is_read_from_the_union_profile() -> None:
    table = tomllib.loads(
        """
name = "某工会"
[contact]
phone = " 0571-12345678 "
hours = { zh_CN = "周一到周五 9:00–17:00", en = "Mon–Fri 9:00–17:00" }
wechat = "hubin_union"
email = ""
"""
    )
    contact = UnionProfile.from_table(table).contact
    assert contact is not None
    assert contact.phone == "0571-12345678" and contact.wechat == "hubin_union" and contact.email is None
    assert contact.hours("en") == "Mon–Fri 9:00–17:00" and contact.hours("fr") == "周一到周五 9:00–17:00"
    assert UnionProfile.from_table({"name": "某工会"}).contact is None


async def test_without_a_contact_table_the_stations_are_named(make_settings) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from bot.runtime import running_bot

    settings = make_settings()
    settings = replace(settings, profile=replace(settings.profile, contact=None))
    async with running_bot(settings) as (_, dispatcher):
        chat = Chat(dispatcher)
        await chat.command("/menu")
        answer = await chat.say("人工")
    assert "驿站" in answer.text and "电话" not in answer.text
    assert all(s.name("zh_CN") in answer.text for s in settings.profile.stations)
