"""What an `Outgoing` becomes on WeChat: text within WeChat's length limit, choices as a numbered list
(or a msgmenu in customer-service messages, where the account has it), phone requests as typing hints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.engine.messages import Outgoing
from bot.locale import Locale

# WeChat cuts text messages at about 2048 bytes of UTF-8; stay under it.
TEXT_LIMIT = 2000


@dataclass(frozen=True)
class Rendered:
    texts: list[str]  # each within TEXT_LIMIT bytes, in order
    image: bytes | None = None
    menu: dict[str, Any] | None = None  # a msgmenu body, sent after the texts


def render(out: Outgoing, locale: Locale, lang: str, *, msgmenu: bool = False) -> Rendered:
    parts = [out.text] if out.text else []
    menu = None
    said = [{"label": b.label, "words": b.words} for b in out.buttons if b.words is not None]
    buttons = [b for b in out.buttons if b.words is None]
    if said:
        parts.append(locale.text(lang, "wechat.say_options", options=said))
    if buttons:
        labels = [b.label for b in buttons]
        if msgmenu:
            menu = {
                "msgtype": "msgmenu",
                "msgmenu": {
                    "head_content": locale.text(lang, "wechat.msgmenu_head"),
                    "list": [{"id": str(i), "content": label} for i, label in enumerate(labels, 1)],
                    "tail_content": locale.text(lang, "wechat.msgmenu_tail"),
                },
            }
        else:
            parts.append(locale.text(lang, "wechat.options", labels=labels))
    for request in out.requests:
        parts.append(locale.text(lang, f"wechat.request_{request}"))
    return Rendered(split_text("\n\n".join(parts)), out.image, menu)


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces within `limit` UTF-8 bytes, cut between paragraphs, else between lines, else anywhere."""
    text = text.strip()
    if not text:
        return []
    if _size(text) <= limit:
        return [text]
    pieces: list[str] = []
    for block in _pack(text.split("\n\n"), "\n\n", limit):
        if _size(block) <= limit:
            pieces.append(block)
            continue
        for line_block in _pack(block.split("\n"), "\n", limit):
            pieces += [line_block] if _size(line_block) <= limit else _cut(line_block, limit)
    return [p.strip() for p in pieces if p.strip()]


def _size(text: str) -> int:
    return len(text.encode())


def _pack(units: list[str], sep: str, limit: int) -> list[str]:
    out: list[str] = []
    for unit in units:
        if out and _size(out[-1] + sep + unit) <= limit:
            out[-1] += sep + unit
        else:
            out.append(unit)
    return out


def _cut(text: str, limit: int) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode())
        if size + n > limit:
            out.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += n
    return [*out, "".join(current)] if current else out


def cdata_safe(text: str) -> str:
    """wechatpy puts reply text in CDATA without escaping: a "]]>" typed by a user (a platform name,
    say) would end it early. Split it across two CDATA sections instead."""
    return text.replace("]]>", "]]]]><![CDATA[>")
