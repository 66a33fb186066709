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

    rows = in_transaction(work, reading=True)
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
        if not bot.read_only:  # a read-only copy cannot record who looked; the copy's holder has it all anyway
            await tx.audit.record(bot.now(), "cli", "member.viewed", member.member_number)
        return summary

    summary = in_transaction(work, reading=True)
    if summary is None:
        typer.echo(f"no member numbered {number}")
        raise typer.Exit(1)
    for k, v in summary.items():
        typer.echo(f"{k}: {v}")


@app.command("set-phone")
def members_set_phone(
    number: Annotated[str, typer.Argument(metavar="NUMBER", help="The member number, e.g. HB2026000001.")],
    phone: Annotated[str, typer.Argument(metavar="PHONE", help="The new mainland mobile number, e.g. 13800138000.")],
) -> None:
    """Change a member's phone (admin): when theirs changed, or a number they typed was another
    member's. Audited. Exit 0 done, 1 no such member or the phone is another member's, 2 not a
    mainland mobile number."""
    from bot.validation import mainland_mobile

    new_phone = mainland_mobile(phone)
    if new_phone is None:
        raise typer.BadParameter("not a mainland mobile number (11 digits, starting 13–19)", param_hint="PHONE")

    async def work(bot: OpenBot, tx: Tx) -> str:
        member = await tx.members.by_number(number.strip().upper())
        if member is None:
            return "missing"
        phone_hash = bot.keyring.lookup_hash(new_phone)
        holder = await tx.members.by_phone_hash(phone_hash)
        if holder is not None:
            return "same" if holder.id == member.id else "taken"
        # Encrypted and hashed with the keyring exactly as joining does, so the member is found by it.
        await tx.members.set_phone(member.id, phone_hash, bot.keyring.encrypt(new_phone))
        # The audit names the member, never the phone.
        await tx.audit.record(bot.now(), "cli", "member.phone_changed", member.member_number)
        return "changed"

    from bot.privacy import mask_phone

    outcome, masked = in_transaction(work), mask_phone(new_phone)
    if outcome == "missing":
        typer.echo(f"no member numbered {number}")
        raise typer.Exit(1)
    if outcome == "taken":
        typer.echo(f"{masked} is another member's phone: not changed")
        raise typer.Exit(1)
    if outcome == "same":
        typer.echo(f"{number.strip().upper()} already has phone {masked}")
        return
    typer.echo(f"{number.strip().upper()}: phone changed to {masked}")
