"""Words that depend on the channel come from the channel: WeChat shows numbered options, so nothing
said there asks a rider to tap a button or share a contact; Telegram has buttons and says so."""

from __future__ import annotations

import re

import pytest

from bot.engine.messages import T
from bot.locale import CHANNEL_WORDS, Locale
from bot.services.wechat_render import render
from tests.chat import Chat
from tests.fakes.wechat_push import text_xml, wechat_bot

L = Locale()
RIDER = "oRider_0000000000000000000077"
# "点按钮", "点下面的按钮", "点一下", "点“同意”", "分享": what a WeChat rider cannot do in this chat
# ("有点长" and "地点" are other words).
TAPPING_ZH = re.compile(r"点(?:下面|一下|按钮|选|击|“)|按钮|分享")
TAPPING_EN = re.compile(r"\btap|\bbutton|\bshare", re.IGNORECASE)


def tapping(text: str) -> list[str]:
    return TAPPING_ZH.findall(text) + TAPPING_EN.findall(text)


async def test_help_on_wechat_says_reply_with_the_number_and_never_tap(settings) -> None:  # type: ignore[no-untyped-def]
    async with wechat_bot(settings) as (_, wx):
        await wx.push(text_xml(RIDER, "菜单"))
        reply = await wx.push(text_xml(RIDER, "帮助"))
    assert "回复选项前面的数字" in reply.content
    assert not tapping(reply.content), reply.content


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
async def test_help_on_telegram_says_tap_a_button(bot, lang: str) -> None:  # type: ignore[no-untyped-def]
    chat = Chat(bot[1], user="77", channel="telegram", language_hint=lang)
    await chat.command("/menu")
    answer = await chat.say("help")
    assert L.text(lang, "engine.tap") in answer.text
    assert "点下面的按钮" in answer.text if lang == "zh_CN" else "tap a button" in answer.text


async def test_joining_on_wechat_never_asks_to_tap_or_share(bot) -> None:  # type: ignore[no-untyped-def]
    chat = Chat(bot[1], user=RIDER, channel="wechat")
    said = [await chat.command("/start")]
    said.append(await chat.say("好的"))  # not an option: the consent hint
    said.append(await chat.say("1"))  # agree: the phone question
    said.append(await chat.say("12345"))  # not a phone number
    said.append(await chat.say("13800138077"))
    said.append(await chat.say("王小明"))
    said.append(await chat.say("随便"))  # not a platform
    said.append(await chat.say("1"))
    said.append(await chat.say("1"))  # the summary
    said.append(await chat.say("哈哈"))  # not an option on the summary
    shown = ["\n\n".join(render(out, L, out.lang).texts) for out in said]  # with options and hints
    for text in shown:
        assert not tapping(text), text
    assert "回复 11 位手机号" in shown[2] and "回复数字" in shown[0]
    assert said[-1].buttons, "the summary still offers its options"


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_no_sentence_asks_a_wechat_or_console_user_to_tap(lang: str) -> None:
    """Every template, rendered for WeChat and the console with made-up values, asks for no tap or
    share, except the Telegram channel's own sentences, the phone-button labels (WeChat has its own
    hints) and what only happens on Telegram."""
    telegram_only = {"join.contact_not_own"}
    for channel in ("wechat", "console"):
        for key in sorted(L.keys(lang)):
            group, _, name = key.partition(".")
            if group == "telegram" or key in telegram_only or name.startswith((*CHANNEL_WORDS, "request_")):
                continue
            # WeChat's own hints name the "+" beside the input box and its tappable msgmenu: both real.
            if group == "wechat" and name in ("request_location", "request_photo", "msgmenu_head"):
                continue
            text = _render_any(lang, key, channel)
            assert not tapping(text), (channel, key, text)


def _render_any(lang: str, key: str, channel: str) -> str:
    """A template rendered with a harmless value for each variable it needs."""
    context: dict = {}
    for _ in range(20):
        try:
            return L.render(lang, T(key, **context), channel)
        except Exception as e:  # jinja2's UndefinedError names the missing variable
            missing = re.search(r"'(\w+)' is undefined", str(e))
            if missing is None:
                return ""  # needs structured values (a list of records): not a sentence about tapping
            context[missing.group(1)] = "x"
    return ""


def test_every_channel_has_every_word() -> None:
    for lang in L.languages:
        keys = L.keys(lang)
        for word in CHANNEL_WORDS:
            assert {f"engine.{word}", f"engine.{word}_wechat", f"engine.{word}_console"} <= keys
        assert L.render(lang, T("engine.choose_option"), "wechat") != L.render(lang, T("engine.choose_option"), "")
