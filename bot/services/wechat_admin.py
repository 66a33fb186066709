"""Setting up the Official Account: the custom menu and parametric QR codes for events."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

from PIL import Image

from bot.engine.context import BotContext
from bot.services.card_image import qr_png
from bot.services.wechat_api import WeChatApi, WeChatUnavailable
from bot.validation import source_code

log = logging.getLogger(__name__)

MAX_TOP, MAX_SUB = 3, 5
# WeChat's limits on button names, in UTF-8 bytes (4 and 8 Chinese characters show in full).
TOP_NAME_BYTES, SUB_NAME_BYTES = 16, 60
MAX_TEMPORARY_DAYS = 30
HIDDEN_FROM_MENU = {"staff"}  # staff reach their menu by command; the public menu does not show it


# Without a [wechat.menu] of the union's own, these give way first: each is a word riders type anyway
# (菜单, 帮助, 我的信息), while the services and the language switch have no other way in they would guess.
DEFAULT_DROP = ("menu", "help", "mydata")
# Entries of the default menu besides the flows, by name, with their label keys.
FIXED_ENTRIES = {"menu": "wechat.menu_home", "help": "wechat.menu_help", "lang": "menu.switch_language"}
# Past three entries, the bar holds the first one and these two sub-menus of five.
SUB_MENUS = ("wechat.menu_services", "wechat.menu_more")


@dataclass(frozen=True)
class MenuPlan:
    """The default menu, and what it leaves out: `left_out` wanted a place and found none (worth a
    warning), `dropped` was left out on purpose, `unknown` names in the config that match nothing."""

    menu: dict[str, Any]
    shown: tuple[str, ...]
    left_out: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


def plan_default_menu(app: BotContext, lang: str | None = None) -> MenuPlan:
    """The flows the main menu offers, then home, help and language, in the order [wechat.menu]
    `order` gives (entries it does not name follow in their usual order), less those in `drop`.
    WeChat shows three buttons on the bar: up to three entries sit there; more than that, the first
    stays on the bar (joining, for someone who just scanned a code), the next five go under "services"
    and the five after under "more". The rest cannot be shown. Labels are in `lang`, by default
    the union's language."""
    lang = lang or app.profile.default_language
    text = app.locale.text
    configured = {"order", "drop"} & _menu_table(app).keys()
    order, drop = _names(app, "order"), _names(app, "drop") if configured else list(DEFAULT_DROP)
    labels = {
        f.name: (f.menu_label, f.commands[0])
        for f in app.flows.values()
        if f.menu_label and f.commands and f.name not in HIDDEN_FROM_MENU
    }
    labels |= {name: (key, name) for name, key in FIXED_ENTRIES.items()}
    both = set(order) & set(drop)
    if both:
        raise ValueError(f"[wechat.menu] names {', '.join(sorted(both))} in both order and drop")
    unknown = tuple(n for n in (*order, *drop) if n not in labels)
    wanted = [n for n in dict.fromkeys([*order, *labels]) if n in labels and n not in drop]
    room = MAX_TOP if len(wanted) <= MAX_TOP else 1 + len(SUB_MENUS) * MAX_SUB
    shown, left_out = wanted[:room], tuple(wanted[room:])

    def click(name: str) -> dict[str, Any]:
        key, payload = labels[name]
        return {"type": "click", "name": text(lang, key), "key": payload}

    buttons = [click(n) for n in shown]
    if len(shown) > MAX_TOP:
        groups = [buttons[1 + i * MAX_SUB : 1 + (i + 1) * MAX_SUB] for i in range(len(SUB_MENUS))]
        subs = [{"name": text(lang, key), "sub_button": g} for key, g in zip(SUB_MENUS, groups, strict=True) if g]
        buttons = [buttons[0], *subs]
    dropped = tuple(n for n in drop if n in labels)
    return MenuPlan({"button": buttons}, tuple(shown), left_out, dropped, unknown)


def _names(app: BotContext, field: str) -> list[str]:
    value = _menu_table(app).get(field, [])
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ValueError(f'[wechat.menu] {field} must be a list of names, e.g. {field} = ["join", "card"]')
    return value


def _menu_table(app: BotContext) -> dict[str, Any]:
    return app.settings.extra.get("wechat", {}).get("menu") or {}


def default_menu(app: BotContext) -> dict[str, Any]:
    return plan_default_menu(app).menu


def configured_menu(app: BotContext, lang: str | None = None) -> dict[str, Any]:
    """[wechat.menu] in WeChat's own shape (a `button` list; an entry with `key` is a click button,
    one with `url` opens a page), else the default, warning in the log about what it leaves out."""
    table = _menu_table(app)
    if "button" in table:
        return {"button": [_button(b) for b in table["button"]]}
    plan = plan_default_menu(app, lang)
    warn_about(plan)
    return plan.menu


def warn_about(plan: MenuPlan) -> None:
    if plan.left_out:
        log.warning(
            "wechat menu: no room for %s (WeChat shows 3 buttons, 5 under each); name them earlier in "
            "[wechat.menu] order to show them, or in drop to leave them out on purpose",
            ", ".join(plan.left_out),
        )
    if plan.unknown:
        log.warning(
            "wechat menu: [wechat.menu] names %s, which is no flow of the main menu nor one of %s",
            ", ".join(plan.unknown),
            ", ".join(FIXED_ENTRIES),
        )


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
