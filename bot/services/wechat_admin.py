"""Setting up the Official Account: the custom menu and parametric QR codes for events."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from bot.engine.context import BotContext
from bot.services.card_image import qr_png
from bot.services.wechat_api import WeChatApi, WeChatUnavailable
from bot.validation import source_code

MAX_TOP, MAX_SUB = 3, 5
# WeChat's limits on button names, in UTF-8 bytes (4 and 8 Chinese characters show in full).
TOP_NAME_BYTES, SUB_NAME_BYTES = 16, 60
MAX_TEMPORARY_DAYS = 30
HIDDEN_FROM_MENU = {"staff"}  # staff reach their menu by command; the public menu does not show it


def default_menu(app: BotContext) -> dict[str, Any]:
    """Built from the flows the main menu offers: the first two on the bar, the rest under "more"."""
    lang = app.profile.default_language
    text = app.locale.text

    def click(name: str, key: str) -> dict[str, Any]:
        return {"type": "click", "name": name, "key": key}

    flows = [
        click(text(lang, f.menu_label), f.commands[0])
        for f in app.flows.values()
        if f.menu_label and f.commands and f.name not in HIDDEN_FROM_MENU
    ]
    top, more = flows[:2], flows[2:]
    more += [
        click(text(lang, "wechat.menu_home"), "menu"),
        click(text(lang, "wechat.menu_help"), "help"),
        click(text(lang, "menu.switch_language"), "lang"),
    ]
    return {"button": [*top, {"name": text(lang, "wechat.menu_more"), "sub_button": more[:MAX_SUB]}]}


def configured_menu(app: BotContext) -> dict[str, Any]:
    """[wechat.menu] in WeChat's own shape (a `button` list; an entry with `key` is a click button,
    one with `url` opens a page), else the default."""
    table = app.settings.extra.get("wechat", {}).get("menu")
    if not table:
        return default_menu(app)
    return {"button": [_button(b) for b in table.get("button", [])]}


def _button(entry: dict[str, Any]) -> dict[str, Any]:
    button = dict(entry)
    if "sub_button" in button:
        button["sub_button"] = [_button(b) for b in button["sub_button"]]
    elif "type" not in button:
        button["type"] = "view" if "url" in button else "click"
    return button


def menu_problems(menu: dict[str, Any]) -> list[str]:
    problems = []
    top = menu.get("button", [])
    if not 1 <= len(top) <= MAX_TOP:
        problems.append(f"the menu needs 1 to {MAX_TOP} top buttons, not {len(top)}")
    for button in top:
        name = str(button.get("name", ""))
        if not name or len(name.encode()) > TOP_NAME_BYTES:
            problems.append(f"top button name {name!r} must be 1 to {TOP_NAME_BYTES} bytes")
        subs = button.get("sub_button")
        if subs is not None and not 1 <= len(subs) <= MAX_SUB:
            problems.append(f"{name!r} needs 1 to {MAX_SUB} sub-buttons, not {len(subs)}")
        for sub in [button] if subs is None else subs:
            sub_name = str(sub.get("name", ""))
            if subs is not None and (not sub_name or len(sub_name.encode()) > SUB_NAME_BYTES):
                problems.append(f"sub-button name {sub_name!r} must be 1 to {SUB_NAME_BYTES} bytes")
            if sub.get("type") == "click" and not sub.get("key"):
                problems.append(f"click button {sub_name!r} has no key")
            if sub.get("type") == "view" and not sub.get("url"):
                problems.append(f"link button {sub_name!r} has no url")
    return problems


async def push_menu(api: WeChatApi, menu: dict[str, Any]) -> None:
    problems = menu_problems(menu)
    if problems:
        raise ValueError("; ".join(problems))
    await api.create_menu(menu)


async def event_qrcode(api: WeChatApi, source: str, temporary_days: int | None) -> tuple[bytes, dict[str, Any]]:
    """A QR code whose scan subscribes (or, for a follower, opens) joining with `source` recorded.
    Returns a PNG (WeChat's picture, or one drawn here from the code's URL) and WeChat's answer."""
    if source_code(source) is None:
        raise ValueError("a source is 1 to 48 letters, digits, '-' or '_'")
    if temporary_days is not None and not 1 <= temporary_days <= MAX_TEMPORARY_DAYS:
        raise ValueError(f"a temporary code lasts 1 to {MAX_TEMPORARY_DAYS} days")
    info = await api.create_qrcode(source, temporary_days * 86400 if temporary_days else None)
    try:
        return _as_png(await api.qrcode_image(str(info["ticket"]))), info
    except (WeChatUnavailable, OSError):
        return qr_png(str(info["url"])), info


def _as_png(picture: bytes) -> bytes:
    """WeChat serves the code as JPEG; the file is a PNG whatever it is called."""
    with Image.open(io.BytesIO(picture)) as img:
        out = io.BytesIO()
        img.save(out, format="PNG")
    return out.getvalue()
