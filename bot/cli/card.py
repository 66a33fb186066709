"""`gigunion card …`: membership cards."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from bot.cli.common import OpenBot, in_transaction

if TYPE_CHECKING:
    from storage import Tx

app = typer.Typer(help="Membership cards.", no_args_is_help=True)


@app.command("verify")
def card_verify(code: str) -> None:
    """Tell whether a membership card's verification code is genuine."""
    from bot.services.membership import verify_card

    async def work(bot: OpenBot, tx: Tx) -> bool:
        check = await verify_card(tx, bot.keyring, bot.profile, code)
        if check.genuine and not bot.read_only:  # a read-only database cannot record the look-up
            await tx.audit.record(bot.now(), "cli", "card.verified", check.number)
        if check.genuine:
            typer.echo(f"GENUINE  {check.number}  {check.masked_name}  {check.masked_phone}  joined {check.joined}")
        else:
            typer.echo("NOT GENUINE: no current member has this code")
        return check.genuine

    if not in_transaction(work, reading=True):
        raise typer.Exit(1)
