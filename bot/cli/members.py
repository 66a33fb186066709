"""`gigunion members …`: members, personal data shown masked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import OpenBot, in_transaction

if TYPE_CHECKING:
    from storage import Tx

app = typer.Typer(help="Members (personal data shown masked).", no_args_is_help=True)


@app.command("list")
def members_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List members, masked."""
    import json

    from bot.services.membership import member_summary

    async def work(bot: OpenBot, tx: Tx) -> list[dict]:
        return [member_summary(m, bot.keyring, bot.profile) for m in await tx.members.all()]

    rows = in_transaction(work)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for r in rows:
            typer.echo("\t".join(str(r[k]) for k in ("number", "name", "phone", "platform", "joined")))


@app.command("show")
def members_show(number: str) -> None:
    """Show one member, masked."""
    from bot.services.membership import member_summary

    async def work(bot: OpenBot, tx: Tx) -> dict | None:
        member = await tx.members.by_number(number.strip().upper())
        if member is None:
            return None
        summary = member_summary(member, bot.keyring, bot.profile)
        summary["channels"] = [i.channel for i in await tx.members.identities(member.id)]
        await tx.audit.record(bot.now(), "cli", "member.viewed", member.member_number)
        return summary

    summary = in_transaction(work)
    if summary is None:
        typer.echo(f"no member numbered {number}")
        raise typer.Exit(1)
    for k, v in summary.items():
        typer.echo(f"{k}: {v}")
