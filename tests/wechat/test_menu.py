"""The Official Account's default menu: WeChat shows 3 buttons with 5 under each, so when the flows
outgrow it, the config decides what stays, and start-up says in the log what did not fit."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import bot.runtime as bot_runtime
from bot.engine.flow import Flow
from bot.runtime import running_bot
from bot.services.wechat_admin import (
    FIXED_ENTRIES,
    MAX_SUB,
    MAX_TOP,
    SUB_MENUS,
    configured_menu,
    menu_problems,
    plan_default_menu,
)
from tests.fakes.wechat_api import FakeWeChatApi
from tests.fakes.wechat_push import wechat_bot, wechat_settings
from tests.wechat.test_api import cli

ROOM = 1 + len(SUB_MENUS) * MAX_SUB  # one entry on the bar, two sub-menus of five

# Flows a later issue adds, each with a menu button (the label keys only need to exist).
LATER = ("petition", "training", "library", "survey")


def add_later_flows(app) -> None:  # type: ignore[no-untyped-def]
    for name in LATER:
        app.flows[name] = Flow(name, commands=(name,), menu_label="menu.join")


def offered(app) -> list[str]:  # type: ignore[no-untyped-def]
    """What the default menu would hold with room for all, by name: the main menu's flows, then the language switch."""
    plan = plan_default_menu(app)
    return [*plan.shown, *plan.left_out]


def as_keys(app, names: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """The menu buttons' keys for those names: a flow's first command, or the entry's own name."""
    return [n if n in FIXED_ENTRIES else app.flows[n].commands[0] for n in names]


def keys(menu: dict) -> list[str]:
    out = []
    for button in menu["button"]:
        out += [b["key"] for b in button.get("sub_button", [button])]
    return out


def warnings(caplog) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "wechat menu" in r.getMessage()]


async def test_more_flows_than_fit_are_named_in_a_warning(bot, caplog) -> None:  # type: ignore[no-untyped-def]
    app, _ = bot
    add_later_flows(app)
    menu = configured_menu(app)
    assert menu_problems(menu) == []
    assert len(menu["button"]) == MAX_TOP and len(menu["button"][-1]["sub_button"]) == MAX_SUB
    wanted = offered(app)
    # One on the bar and five under each of "services" and "more", in the main menu's order; the rest do not fit.
    assert keys(menu) == as_keys(app, wanted[:ROOM]) and keys(menu)[:2] == ["join", "card"] and wanted[-1] == "lang"
    [warning] = warnings(caplog)
    assert f"no room for {', '.join(wanted[ROOM:])}" in warning and "[wechat.menu] order" in warning


async def test_the_config_decides_what_stays(make_settings, caplog) -> None:  # type: ignore[no-untyped-def]
    async with running_bot(make_settings(extra={"wechat": {"menu": {"order": []}}})) as (app, _):
        add_later_flows(app)  # (a [wechat.menu] of its own: nothing dropped by default)
        others = [f for f in offered(app) if f not in ("join", "claim", "card", "help", "lang", "menu")]
    # Keep these four in this order, and drop all the rest but two: nothing is left out by accident.
    table = {"order": ["join", "claim", "card", "help"], "drop": ["lang", *others[2:]]}
    async with running_bot(make_settings(extra={"wechat": {"menu": table}})) as (app, _):
        add_later_flows(app)
        plan = plan_default_menu(app)
        assert keys(plan.menu) == as_keys(app, ["join", "claim", "card", "help", *others[:2], "menu"])
        assert plan.left_out == () and plan.dropped == ("lang", *others[2:])
        configured_menu(app)
    assert warnings(caplog) == []  # dropped on purpose: nothing to warn about


async def test_a_name_in_the_config_that_matches_nothing_is_warned_about(make_settings, caplog) -> None:  # type: ignore[no-untyped-def]
    async with running_bot(make_settings(extra={"wechat": {"menu": {"order": ["jion"]}}})) as (app, _):
        assert keys(configured_menu(app))[:2] == ["join", "card"]
    assert any("jion" in warning for warning in warnings(caplog))
    async with running_bot(make_settings(extra={"wechat": {"menu": {"order": "join"}}})) as (app, _):
        with pytest.raises(ValueError, match="order must be a list"):
            configured_menu(app)


async def test_serve_start_up_warns_about_what_does_not_fit(make_settings, fake, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings = wechat_settings(make_settings, fake.base)
    async with wechat_bot(settings):
        # Today's services and the language switch fit; 主菜单, 帮助 and 我的信息 give way by default (typed).
        assert warnings(caplog) == []

    original = bot_runtime.all_flows

    def more_flows():  # type: ignore[no-untyped-def]
        found = original()
        for name in LATER:
            found[name] = Flow(name, commands=(name,), menu_label="menu.join")
        return found

    monkeypatch.setattr(bot_runtime, "all_flows", more_flows)
    async with wechat_bot(settings) as (wechat_app, _):
        warning = warnings(caplog)[-1]
        left = offered(wechat_app)[ROOM:]
    assert left and f"no room for {', '.join(left)}" in warning


async def test_dry_run_prints_the_menu_the_config_asks_for_and_warns(tmp_path: Path, fake: FakeWeChatApi) -> None:
    config = '[wechat.menu]\norder = ["mydata", "help"]\ndrop = ["lang", "card", "book", "my_bookings"]\n'
    code, out, err = await cli(tmp_path, fake, "wechat", "menu", "push", "--dry-run", config=config)
    assert code == 0, err
    menu = json.loads(out)
    assert keys(menu) == ["mydata", "help", "join", "claim", "myclaims", "events", "complain", "menu"]
    assert fake.to("menu/create") == []
    config = '[wechat.menu]\norder = ["claims"]\n'
    code, out, err = await cli(tmp_path, fake, "wechat", "menu", "push", "--dry-run", config=config)
    assert code == 0 and "claims" in err and "wechat menu" in err
