"""Rendering for WeChat: numbered choices, typing hints, length limits, and the language guess."""

from __future__ import annotations

from wechatpy.replies import create_reply

from bot.engine.messages import OutButton, Outgoing, Request
from bot.locale import Locale
from bot.services.wechat_render import TEXT_LIMIT, cdata_safe, render, split_text

LOCALE = Locale()
LANGS = LOCALE.languages


def test_choices_become_a_numbered_list_and_the_phone_request_a_typing_hint() -> None:
    out = Outgoing("请问要办什么？", (OutButton("加入工会", "a|1"), OutButton("我的会员证", "a|2")), (Request.CONTACT,))
    (text,) = render(out, LOCALE, "zh_CN").texts
    assert text.startswith("请问要办什么？\n\n回复数字就能选：\n1 加入工会\n2 我的会员证")
    assert "11 位手机号" in text
    (english,) = render(Outgoing("Choose", (OutButton("Join", "a|1"),)), LOCALE, "en").texts
    assert english == "Choose\n\nReply with a number:\n1 Join"


def test_long_text_is_split_within_the_limit_at_paragraphs_then_lines() -> None:
    paragraphs = ["第" + "一二三四五六七八九十" * 20 + "段" for _ in range(6)]  # ~606 bytes each
    pieces = split_text("\n\n".join(paragraphs))
    assert len(pieces) == 2 and all(len(p.encode()) <= TEXT_LIMIT for p in pieces)
    assert "\n\n".join(pieces) == "\n\n".join(paragraphs)
    one_line = "长" * 2000  # 6000 bytes with no break at all
    pieces = split_text(one_line)
    assert all(len(p.encode()) <= TEXT_LIMIT for p in pieces) and "".join(pieces) == one_line
    lines = "\n".join(f"{i} 一行字" * 10 for i in range(100))
    assert all(len(p.encode()) <= TEXT_LIMIT for p in split_text(lines))
    assert split_text("  ") == [] and split_text("短") == ["短"]


def test_a_typed_cdata_end_cannot_break_the_reply_xml() -> None:
    import xmltodict

    xml = create_reply(cdata_safe("平台：abc]]><MsgType>x</MsgType>"), render=True)
    assert xmltodict.parse(xml)["xml"]["Content"] == "平台：abc]]><MsgType>x</MsgType>"
