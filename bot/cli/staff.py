"""`gigunion staff …`: who may use the staff menu, and in what role."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import ROLES, OpenBot, in_transaction, user_key

if TYPE_CHECKING:
    from storage import Tx

app = typer.Typer(help="Union staff who may use the staff menu.", no_args_is_help=True)

# An account as the bot's /id shows it, by channel: a Telegram user id is digits; a WeChat openid is 28
# letters, digits, - and _; a console user is a name without spaces.
ACCOUNT_SHAPES = {
    "telegram": re.compile(r"[0-9]{1,20}"),
    "wechat": re.compile(r"[A-Za-z0-9_-]{28}"),
    "console": re.compile(r"[^\s:]{1,64}"),
}
ACCOUNT_HELP = (
    "telegram:<digits> (e.g. telegram:123456789), wechat:<openid> (28 letters, digits, - or _) or "
    "console:<name>; the staffer sees theirs by sending /id to the bot"
)


def account(identity: str) -> str:
    """CHANNEL:ID of a new staffer, in the shape its channel gives, or a usage error saying that shape."""
    channel, _, uid = identity.strip().partition(":")
    shape = ACCOUNT_SHAPES.get(channel)
    if shape is None or not shape.fullmatch(uid):
        raise typer.BadParameter(f"{identity!r} is no account: write {ACCOUNT_HELP}.", param_hint="IDENTITY")
    return f"{channel}:{uid}"


@app.command("add")
def staff_add(
    identity: Annotated[str, typer.Argument(help="CHANNEL:ID as /id shows it, e.g. telegram:123456789")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}")],
    name: Annotated[str, typer.Option(help="How the staffer is addressed.")],
) -> None:
    """Let a channel identity use the staff menu (again: updates role and name)."""
    key = account(identity)
    name = name.strip()
    if not name:
        raise typer.BadParameter("give how the staffer is addressed, e.g. --name 李老师.", param_hint="--name")
    from storage.staff import ROLES as roles  # the real list, in case the copy in common.py is behind

    if role not in roles:
        raise typer.BadParameter(f"role must be one of: {', '.join(roles)}")

    async def work(bot: OpenBot, tx: Tx) -> None:
        await tx.staff.add(key, role, name, bot.now())
        await tx.audit.record(bot.now(), "cli", f"staff.added:{role}", key)

    in_transaction(work)
    typer.echo(f"{key} is now staff ({role})")


@app.command("list")
def staff_list() -> None:
    """List staff."""

    async def work(_bot: OpenBot, tx: Tx) -> None:
        for s in await tx.staff.all():
            typer.echo(f"{s.user_key}\t{s.role}\t{s.name}")

    in_transaction(work, reading=True)


@app.command("remove")
def staff_remove(identity: str) -> None:
    """Take away staff access."""
    key = user_key(identity)

    async def work(bot: OpenBot, tx: Tx) -> bool:
        removed = await tx.staff.remove(key)
        if removed:
            await tx.audit.record(bot.now(), "cli", "staff.removed", key)
        return removed

    if not in_transaction(work):
        typer.echo(f"{key} was not staff")
        raise typer.Exit(1)
    typer.echo(f"{key} is no longer staff")
