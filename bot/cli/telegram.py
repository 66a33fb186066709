"""`gigunion telegram …`: long polling, the webhook, join links (the channel is bot/handlers/telegram.py)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bot.cli.common import run, settings

if TYPE_CHECKING:
    from bot.config import Settings

T = TypeVar("T")

app = typer.Typer(
    help="Telegram: run the bot by long polling (no subcommand), register the webhook, print join links.",
    invoke_without_command=True,
)


def _telegram_settings() -> Settings:
    s = settings()
    if not s.telegram_token:
        typer.echo("GIGUNION_TELEGRAM_TOKEN is not set: get a token from @BotFather first.", err=True)
        raise typer.Exit(2)
    return s


def _run_telegram(coro: Coroutine[Any, Any, T]) -> T:
    from telegram.error import TelegramError

    try:
        return run(coro)
    except TelegramError as e:  # a refused token or an unreachable API: say which, without a traceback
        typer.echo(f"Telegram: {type(e).__name__}: {e}", err=True)
        raise typer.Exit(1) from None


@app.callback()
def telegram_polling(ctx: typer.Context) -> None:
    """Run the Telegram bot by long polling until SIGTERM or Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.handlers.telegram import run_polling

    _run_telegram(run_polling(_telegram_settings()))


@app.command("set-webhook")
def telegram_set_webhook(
    url: Annotated[str, typer.Argument(help="Public HTTPS address of /telegram/webhook on `gigunion serve`.")],
) -> None:
    """Have Telegram send updates to URL, signed with GIGUNION_TELEGRAM_WEBHOOK_SECRET."""
    from bot.handlers.telegram import set_webhook

    s = _telegram_settings()
    if not s.telegram_webhook_secret:
        typer.echo("Set GIGUNION_TELEGRAM_WEBHOOK_SECRET first (the same value for `gigunion serve`).", err=True)
        raise typer.Exit(2)
    _run_telegram(set_webhook(s, url))
    typer.echo(f"webhook set: {url}")


@app.command("join-link")
def telegram_join_link(
    source: Annotated[str, typer.Argument(help="Where the code is shown, e.g. station-12 or service-day-0601.")],
    qr: Annotated[str | None, typer.Option("--qr", help="Also write the link as a QR code PNG to this file.")] = None,
) -> None:
    """Print the link that opens the bot and starts joining with SOURCE recorded on the member."""
    from pathlib import Path

    from bot.handlers.telegram import join_link
    from bot.services.card_image import qr_png
    from bot.validation import source_code

    if source_code(source) is None:
        raise typer.BadParameter("use 1-48 letters, digits, '-' or '_', e.g. station-12")
    link = _run_telegram(join_link(_telegram_settings(), source))
    typer.echo(link)
    if qr:
        Path(qr).write_bytes(qr_png(link))
        typer.echo(f"QR code written to {qr}")
