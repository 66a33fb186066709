"""`gigunion console`: chat with the bot in a terminal."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import run, settings


def console(
    user: Annotated[str, typer.Option(help="Who you are in this chat.")] = "me",
    lang: Annotated[str | None, typer.Option(help="zh-CN or en (default: the union's language).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per bot message.")] = False,
) -> None:
    """Chat with the bot in this terminal (or script it through stdin)."""
    from bot.handlers.console import run_console
    from bot.runtime import running_bot

    async def go() -> None:
        async with running_bot(settings()) as (_, dispatcher):
            await run_console(dispatcher, user, lang, as_json)

    run(go())
