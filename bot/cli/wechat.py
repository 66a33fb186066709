"""`gigunion wechat …`: setting up the WeChat Official Account (the API calls live in bot/services/wechat_*)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from bot.cli.common import run, settings

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from bot.services.wechat_api import WeChatApi

T = TypeVar("T")

app = typer.Typer(help="The WeChat Official Account (服务号): menu and event QR codes.", no_args_is_help=True)
menu_app = typer.Typer(help="The account's custom menu.", no_args_is_help=True)
app.add_typer(menu_app, name="menu")


class Language(StrEnum):
    """The languages the bot speaks (the folders of locales/; tests/test_exit_codes.py checks the two agree)."""

    zh_CN = "zh_CN"
    en = "en"


async def _with_wechat_api(bot: BotContext, work: Callable[[WeChatApi], Awaitable[T]]) -> T:
    import httpx

    from bot.services.wechat_api import WeChatApi, quiet_http_logs

    quiet_http_logs()
    async with httpx.AsyncClient(timeout=15.0) as client:
        return await work(WeChatApi(bot, client))


# Help texts are rich markup, where "[wechat.menu]" would be a style tag and vanish: its bracket is escaped.
@menu_app.command("push")
def wechat_menu_push(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the menu; send nothing.")] = False,
    lang: Annotated[
        Language | None,
        typer.Option(
            help="Language of the default menu's labels (default: the union's first language). "
            "A menu written out in \\[wechat.menu] button is sent as written."
        ),
    ] = None,
) -> None:
    """Create the custom menu (at most 3 x 5) from \\[wechat.menu] in the config file, or the default built
    from the flows."""
    import json

    from bot.runtime import running_bot
    from bot.services.wechat_admin import configured_menu, menu_problems, push_menu
    from bot.services.wechat_api import WeChatError, WeChatUnavailable

    async def go() -> dict:
        async with running_bot(settings()) as (bot, _):
            menu = configured_menu(bot, lang.value if lang else None)
            if dry_run:
                for problem in menu_problems(menu):
                    typer.echo(f"problem: {problem}", err=True)
            else:
                await _with_wechat_api(bot, lambda api: push_menu(api, menu))
            return menu

    try:
        menu = run(go())
    except (ValueError, WeChatError, WeChatUnavailable) as e:
        typer.echo(f"menu not pushed: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(menu, ensure_ascii=False, indent=1))
    if not dry_run:
        typer.echo("menu pushed; followers see it within a few minutes (or on re-following)")


@app.command("qrcode")
def wechat_qrcode(
    source: Annotated[str, typer.Argument(help="Where the code is shown: station-12, smile-market-0601…")],
    out: Annotated[str, typer.Option("--out", help="PNG file to write.")] = "qr.png",
    temporary: Annotated[
        int | None, typer.Option("--temporary", metavar="DAYS", help="Expire after DAYS (1-30); else permanent.")
    ] = None,
) -> None:
    """Make a parametric QR code: scanning it follows the account and starts joining with SOURCE recorded."""
    from pathlib import Path

    from bot.runtime import running_bot
    from bot.services.wechat_admin import event_qrcode
    from bot.services.wechat_api import WeChatError, WeChatUnavailable

    async def go() -> tuple[bytes, dict]:
        async with running_bot(settings()) as (bot, _):
            return await _with_wechat_api(bot, lambda api: event_qrcode(api, source, temporary))

    try:
        picture, info = run(go())
    except (ValueError, WeChatError, WeChatUnavailable) as e:
        typer.echo(f"no QR code made: {e}", err=True)
        raise typer.Exit(1) from None
    Path(out).write_bytes(picture)
    lasts = f"expires in {temporary} days" if temporary else "permanent"
    typer.echo(f"wrote {out} for source {source} ({lasts}): {info.get('url', '')}")
