"""`gigunion db …`: the database schema."""

from __future__ import annotations

import typer

from bot.cli.common import open_bot, run, settings

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (also done automatically on start)."""

    async def go() -> None:
        async with open_bot(settings(), upgrade=True):
            pass

    run(go())
    typer.echo("database is up to date")
