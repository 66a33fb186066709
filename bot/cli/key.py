"""`gigunion key …`: the secret key that encrypts members' phone numbers and makes card codes."""

from __future__ import annotations

import typer

from bot.cli.common import open_bot, run, settings

app = typer.Typer(help="The secret key (encrypts phone numbers, makes card codes).", no_args_is_help=True)


@app.command("rotate")
def key_rotate() -> None:
    """Move every protected field to a new key in one transaction.

    Stop every bot process first: one still running would keep writing under the old key. Card codes are
    REISSUED (whoever knows the old key could make the old ones): old codes stop verifying, and members
    see their new code under "my card". The new key replaces the key file once the database has
    committed; back it up.
    """
    from bot.services.secret_key import rotate

    async def go():  # type: ignore[no-untyped-def]
        async with open_bot(settings(), reading=True) as bot:
            if bot.read_only:
                from bot.errors import DatabaseProblem

                raise DatabaseProblem("The database is read-only: the key cannot be rotated here.")
            return await rotate(bot.settings, bot.db, bot.keyring, bot.now())

    done = run(go())
    typer.echo(f"Key rotated: {done.members} member(s) re-encrypted, {done.conversations} conversation(s).")
    typer.echo("Card codes were REISSUED: the old codes no longer verify; members find the new one under 'my card'.")
    typer.echo(f"The new key is in {done.key_file}; back it up now (the old key is gone).")
