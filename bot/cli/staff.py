"""`gigunion staff …`: who may use the staff menu, and in what role."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import ROLES, OpenBot, in_transaction, user_key

if TYPE_CHECKING:
    from storage import Tx

app = typer.Typer(help="Union staff who may use the staff menu.", no_args_is_help=True)


@app.command("add")
def staff_add(
    identity: Annotated[str, typer.Argument(help="CHANNEL:ID, e.g. telegram:123456789")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}")],
    name: Annotated[str, typer.Option(help="How the staffer is addressed.")],
) -> None:
    """Let a channel identity use the staff menu (again: updates role and name)."""
    key = user_key(identity)
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

    in_transaction(work)


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
