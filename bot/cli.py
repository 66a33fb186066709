"""The `gigunion` command."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from contextlib import AsyncExitStack
from typing import Annotated

import typer

from bot.config import Settings, load_settings
from bot.runtime import running_bot, settle_heap
from bot.services.membership import verify_card
from storage.staff import ROLES

app = typer.Typer(help="GigUnion bot: a union chatbot for gig workers.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
card_app = typer.Typer(help="Membership cards.", no_args_is_help=True)
staff_app = typer.Typer(help="Union staff who may use the staff menu.", no_args_is_help=True)
members_app = typer.Typer(help="Members (personal data shown masked).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(card_app, name="card")
app.add_typer(staff_app, name="staff")
app.add_typer(members_app, name="members")

_state: dict[str, Settings] = {}


@app.callback()
def main_options(
    config: Annotated[str | None, typer.Option("--config", help="TOML settings file (or GIGUNION_CONFIG).")] = None,
) -> None:
    settings = load_settings(config)
    _state["settings"] = settings
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def settings() -> Settings:
    return _state["settings"]


def run(coro) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(coro)


@app.command()
def console(
    user: Annotated[str, typer.Option(help="Who you are in this chat.")] = "me",
    lang: Annotated[str | None, typer.Option(help="zh-CN or en (default: the union's language).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per bot message.")] = False,
) -> None:
    """Chat with the bot in this terminal (or script it through stdin)."""
    from bot.handlers.console import run_console

    async def go() -> None:
        async with running_bot(settings()) as (_, dispatcher):
            await run_console(dispatcher, user, lang, as_json)

    run(go())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Run the web app: the Telegram webhook and WeChat callback (for those configured), and /healthz."""
    import uvicorn

    from bot.web import create_app

    async def go() -> None:
        s = settings()
        async with running_bot(s) as (bot, dispatcher), AsyncExitStack() as stack:
            routes = []
            # Each channel is an async context: it starts its clients and outbox sender and yields
            # its routes; leaving it stops them.
            if s.telegram_token:
                from bot.handlers.telegram import webhook_channel

                routes += await stack.enter_async_context(webhook_channel(bot, dispatcher))
            if s.wechat_token:
                from bot.handlers.wechat import wechat_channel

                routes += await stack.enter_async_context(wechat_channel(bot, dispatcher))
            web = create_app(routes)
            # uvicorn re-raises the SIGTERM it caught once it has stopped; with the default handler that
            # would kill the process before the channels and the database are closed below.
            signal.signal(signal.SIGTERM, lambda *_: None)
            settle_heap()
            await uvicorn.Server(uvicorn.Config(web, host=host, port=port, log_level="warning")).serve()

    run(go())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (also done automatically on start)."""

    async def go() -> None:
        async with running_bot(settings()):
            pass
        typer.echo("database is up to date")

    run(go())


@card_app.command("verify")
def card_verify(code: str) -> None:
    """Tell whether a membership card's verification code is genuine."""

    async def go() -> bool:
        async with running_bot(settings()) as (bot, _), bot.db.transaction() as tx:
            check = await verify_card(tx, bot.keyring, bot.profile, code)
            if check.genuine:
                await tx.audit.record(bot.now(), "cli", "card.verified", check.number)
                typer.echo(f"GENUINE  {check.number}  {check.masked_name}  {check.masked_phone}  joined {check.joined}")
            else:
                typer.echo("NOT GENUINE: no current member has this code")
            return check.genuine

    if not asyncio.run(go()):
        raise typer.Exit(1)


def _user_key(identity: str) -> str:
    channel, _, uid = identity.partition(":")
    if channel not in ("telegram", "wechat", "console") or not uid:
        raise typer.BadParameter("write it as CHANNEL:ID, e.g. telegram:123456789 or wechat:oXYZ…")
    return identity


@staff_app.command("add")
def staff_add(
    identity: Annotated[str, typer.Argument(help="CHANNEL:ID, e.g. telegram:123456789")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}")],
    name: Annotated[str, typer.Option(help="How the staffer is addressed.")],
) -> None:
    """Let a channel identity use the staff menu (again: updates role and name)."""
    key = _user_key(identity)
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of: {', '.join(ROLES)}")

    async def go() -> None:
        async with running_bot(settings()) as (bot, _), bot.db.transaction() as tx:
            await tx.staff.add(key, role, name, bot.now())
            await tx.audit.record(bot.now(), "cli", f"staff.added:{role}", key)
        typer.echo(f"{key} is now staff ({role})")

    run(go())


@staff_app.command("list")
def staff_list() -> None:
    """List staff."""

    async def go() -> None:
        async with running_bot(settings()) as (bot, _), bot.db.transaction() as tx:
            for s in await tx.staff.all():
                typer.echo(f"{s.user_key}\t{s.role}\t{s.name}")

    run(go())


@staff_app.command("remove")
def staff_remove(identity: str) -> None:
    """Take away staff access."""
    key = _user_key(identity)

    async def go() -> bool:
        async with running_bot(settings()) as (bot, _), bot.db.transaction() as tx:
            removed = await tx.staff.remove(key)
            if removed:
                await tx.audit.record(bot.now(), "cli", "staff.removed", key)
            return removed

    if not asyncio.run(go()):
        typer.echo(f"{key} was not staff")
        raise typer.Exit(1)
    typer.echo(f"{key} is no longer staff")


@members_app.command("list")
def members_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List members, masked."""
    from bot.services.membership import member_summary

    async def go() -> None:
        async with running_bot(settings()) as (bot, _), bot.db.transaction() as tx:
            rows = [member_summary(m, bot.keyring, bot.profile) for m in await tx.members.all()]
        if as_json:
            typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        else:
            for r in rows:
                typer.echo("\t".join(str(r[k]) for k in ("number", "name", "phone", "platform", "joined")))

    run(go())


@members_app.command("show")
def members_show(number: str) -> None:
    """Show one member, masked."""
    from bot.services.membership import member_summary

    async def go() -> bool:
        async with running_bot(settings()) as (bot, _), bot.db.transaction() as tx:
            member = await tx.members.by_number(number.strip().upper())
            if member is None:
                return False
            summary = member_summary(member, bot.keyring, bot.profile)
            summary["channels"] = [i.channel for i in await tx.members.identities(member.id)]
            await tx.audit.record(bot.now(), "cli", "member.viewed", member.member_number)
        for k, v in summary.items():
            typer.echo(f"{k}: {v}")
        return True

    if not asyncio.run(go()):
        typer.echo(f"no member numbered {number}")
        raise typer.Exit(1)


# -- channel commands: `gigunion telegram …` and `gigunion wechat …` -------------------------------------

# `gigunion telegram …`: long polling, the webhook, join links (the channel is bot/handlers/telegram.py).
telegram_app = typer.Typer(
    help="Telegram: run the bot by long polling (no subcommand), register the webhook, print join links.",
    invoke_without_command=True,
)
app.add_typer(telegram_app, name="telegram")


def _telegram_settings() -> Settings:
    s = settings()
    if not s.telegram_token:
        typer.echo("GIGUNION_TELEGRAM_TOKEN is not set: get a token from @BotFather first.", err=True)
        raise typer.Exit(2)
    return s


def _run_telegram(coro):  # type: ignore[no-untyped-def]
    from telegram.error import TelegramError

    try:
        return asyncio.run(coro)
    except TelegramError as e:  # a refused token or an unreachable API: say which, without a traceback
        typer.echo(f"Telegram: {type(e).__name__}: {e}", err=True)
        raise typer.Exit(1) from None


@telegram_app.callback()
def telegram_polling(ctx: typer.Context) -> None:
    """Run the Telegram bot by long polling until SIGTERM or Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.handlers.telegram import run_polling

    _run_telegram(run_polling(_telegram_settings()))


@telegram_app.command("set-webhook")
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


@telegram_app.command("join-link")
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


# `gigunion wechat …`: setting up the WeChat Official Account (the API calls live in bot/services/wechat_*).
wechat_app = typer.Typer(help="The WeChat Official Account (服务号): menu and event QR codes.", no_args_is_help=True)
wechat_menu_app = typer.Typer(help="The account's custom menu.", no_args_is_help=True)
app.add_typer(wechat_app, name="wechat")
wechat_app.add_typer(wechat_menu_app, name="menu")


async def _with_wechat_api(bot, work):  # type: ignore[no-untyped-def]
    import httpx

    from bot.services.wechat_api import WeChatApi, quiet_http_logs

    quiet_http_logs()
    async with httpx.AsyncClient(timeout=15.0) as client:
        return await work(WeChatApi(bot, client))


@wechat_menu_app.command("push")
def wechat_menu_push(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the menu; send nothing.")] = False,
) -> None:
    """Create the custom menu (at most 3 x 5) from [wechat.menu], or the default built from the flows."""
    from bot.services.wechat_admin import configured_menu, menu_problems, push_menu
    from bot.services.wechat_api import WeChatError, WeChatUnavailable

    async def go() -> dict:
        async with running_bot(settings()) as (bot, _):
            menu = configured_menu(bot)
            if dry_run:
                for problem in menu_problems(menu):
                    typer.echo(f"problem: {problem}", err=True)
            else:
                await _with_wechat_api(bot, lambda api: push_menu(api, menu))
            return menu

    try:
        menu = asyncio.run(go())
    except (ValueError, WeChatError, WeChatUnavailable) as e:
        typer.echo(f"menu not pushed: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(menu, ensure_ascii=False, indent=1))
    if not dry_run:
        typer.echo("menu pushed; followers see it within a few minutes (or on re-following)")


@wechat_app.command("qrcode")
def wechat_qrcode(
    source: Annotated[str, typer.Argument(help="Where the code is shown: station-12, smile-market-0601…")],
    out: Annotated[str, typer.Option("--out", help="PNG file to write.")] = "qr.png",
    temporary: Annotated[
        int | None, typer.Option("--temporary", metavar="DAYS", help="Expire after DAYS (1-30); else permanent.")
    ] = None,
) -> None:
    """Make a parametric QR code: scanning it follows the account and starts joining with SOURCE recorded."""
    from pathlib import Path

    from bot.services.wechat_admin import event_qrcode
    from bot.services.wechat_api import WeChatError, WeChatUnavailable

    async def go() -> tuple[bytes, dict]:
        async with running_bot(settings()) as (bot, _):
            return await _with_wechat_api(bot, lambda api: event_qrcode(api, source, temporary))

    try:
        picture, info = asyncio.run(go())
    except (ValueError, WeChatError, WeChatUnavailable) as e:
        typer.echo(f"no QR code made: {e}", err=True)
        raise typer.Exit(1) from None
    Path(out).write_bytes(picture)
    lasts = f"expires in {temporary} days" if temporary else "permanent"
    typer.echo(f"wrote {out} for source {source} ({lasts}): {info.get('url', '')}")


def main() -> None:
    app()
