"""`gigunion claims …`: the claims desk from the command line (list, show, decide, pay, export).

Decisions go through `bot.services.claims` exactly as the chat's do: the same rules, the same history,
the same notice to the member; a claim someone moved meanwhile is refused, not overwritten. Personal
details are shown masked; `export --unmasked` writes them in full and is audited.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import in_transaction

if TYPE_CHECKING:
    from bot.cli.common import OpenBot
    from bot.engine.context import BotContext
    from storage import Tx
    from storage.claims import Claim

app = typer.Typer(help="Insurance claims: review, decide, pay, export (details shown masked).", no_args_is_help=True)

ACTOR = "cli"
# Copies of bot.services.claims.STATUSES and REJECT_REASONS for the help texts: importing the service
# loads SQLAlchemy. tests/test_claims_cli.py fails when they differ.
STATUSES = ("submitted", "under_review", "needs_info", "approved", "rejected", "paid")
REJECT_REASONS = ("not_covered", "outside_window", "missing_documents", "duplicate", "not_member", "other")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


class Decision(StrEnum):
    approve = "approve"
    reject = "reject"
    need_info = "need-info"
    appeal = "appeal"


def _context(bot: OpenBot) -> BotContext:
    """What the service needs to tell the member: the profile and the locale, without flows or channels."""
    from bot.engine.context import BotContext
    from bot.locale import Locale

    return BotContext(settings=bot.settings, db=bot.db, keyring=bot.keyring, locale=Locale(), flows={})


def _number(text: str) -> str:
    return text.strip().upper()


async def _summary(tx: Tx, claim: Claim) -> dict[str, Any]:
    from bot.services.claims import yuan

    member = await tx.members.by_id(claim.member_id)
    return {
        "number": claim.number,
        "status": claim.status,
        "type": claim.type,
        "member": member.member_number if member else None,
        "incident_date": claim.incident_date.isoformat(),
        "claimed_fen": claim.claimed_fen,
        "claimed": yuan(claim.claimed_fen),
        "approved_fen": claim.approved_fen,
        "incomplete": claim.incomplete,
        "missing": list(claim.missing),
        "documents": [d.item for d in await tx.claims.documents(claim.id)],
        "appealed": claim.appealed,
        "assignee": claim.assignee,
        "version": claim.version,
        "created_at": claim.created_at.isoformat(),
        "updated_at": claim.updated_at.isoformat(),
    }


@app.command("list")
def claims_list(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help=f"Only claims in this state (repeatable): {', '.join(STATUSES)}."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per claim, one per line.")] = False,
) -> None:
    """List claims, oldest first (the order to work through them)."""
    import json

    wanted = tuple(status or STATUSES)
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise typer.BadParameter(
            f"{unknown[0]!r} is no claim state; use one of {', '.join(STATUSES)}", param_hint="--status"
        )

    async def work(bot: OpenBot, tx: Tx) -> list[dict[str, Any]]:
        total = await tx.claims.count(wanted)
        return [await _summary(tx, c) for c in await tx.claims.queue(wanted, 0, total)]

    for row in in_transaction(work, reading=True):
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            approved = "" if row["approved_fen"] is None else f"approved {row['approved_fen'] / 100:.2f}"
            flags = " incomplete" if row["incomplete"] else ""
            typer.echo(
                f"{row['number']}\t{row['status']}\t{row['type']}\t{row['claimed']}\t{approved}\t"
                f"{row['created_at'][:10]}{flags}"
            )


@app.command("show")
def claims_show(number: Annotated[str, typer.Argument(metavar="NUMBER", help="e.g. LP2026-000123")]) -> None:
    """Show one claim: details (payout masked), documents and history. Audited."""
    from bot.services.claims import yuan

    async def work(bot: OpenBot, tx: Tx) -> tuple[dict[str, Any], list[str]] | None:
        claim = await tx.claims.by_number(_number(number))
        if claim is None:
            return None
        summary = await _summary(tx, claim)
        summary["approved"] = yuan(claim.approved_fen) if claim.approved_fen is not None else None
        summary["description"] = claim.description
        summary.update(_payout(bot, claim, masked=True))
        for key in ("reason_code", "reason_text", "info_note", "payment_ref"):
            summary[key] = getattr(claim, key)
        history = [
            f"{e.at.isoformat(timespec='seconds')}  {e.from_status or '-'} -> {e.to_status}  by {e.actor}"
            + (f"  ({e.note})" if e.note else "")
            for e in await tx.claims.history(claim.id)
        ]
        if not bot.read_only:  # a read-only copy cannot record who looked
            await tx.audit.record(bot.now(), ACTOR, "claim.viewed", claim.number)
        return summary, history

    shown = in_transaction(work, reading=True)
    if shown is None:
        typer.echo(f"no claim numbered {_number(number)}", err=True)
        raise typer.Exit(1)
    summary, history = shown
    for k, v in summary.items():
        if v not in (None, [], ""):
            typer.echo(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}")
    typer.echo("history:")
    for line in history:
        typer.echo(f"  {line}")


def _payout(bot: OpenBot, claim: Claim, *, masked: bool) -> dict[str, str]:
    from bot.privacy import mask_account, mask_id_number, mask_name

    holder = bot.keyring.decrypt(claim.payout_holder_enc)
    account = bot.keyring.decrypt(claim.payout_account_enc)
    id_number = bot.keyring.decrypt(claim.id_number_enc) if claim.id_number_enc else ""
    if masked:
        holder, account = mask_name(holder), mask_account(account)
        id_number = mask_id_number(id_number) if id_number else ""
    return {"payout_kind": claim.payout_kind, "holder": holder, "account": account, "id_number": id_number}


_REFUSALS = {
    "not_found": "no claim numbered {number}",
    "not_allowed": "{number} is {status}: it cannot be {doing} from this state",
    "moved_meanwhile": "{number} was changed by someone else meanwhile (now {status}): look again with "
    "`gigunion claims show {number}` before deciding",
    "bad_amount": "{number}: the amount must be more than 0 and at most the {claimed} yuan claimed",
    "already_appealed": "{number} has been reviewed again once already: it cannot be reopened",
    "bad_reason": "the reason must be one of " + ", ".join(REJECT_REASONS),
    "no_reference": "a payment reference is needed (--ref)",
}


def _refused(reason: str, number: str, doing: str) -> None:
    """The one line saying why, then exit 1."""

    async def state(bot: OpenBot, tx: Tx) -> Claim | None:
        return await tx.claims.by_number(number)

    claim = in_transaction(state, reading=True) if reason != "not_found" else None
    from bot.services.claims import yuan

    typer.echo(
        _REFUSALS.get(reason, "{number}: refused ({reason})").format(
            number=number,
            reason=reason,
            doing=doing,
            status=claim.status if claim else "?",
            claimed=yuan(claim.claimed_fen) if claim else "?",
        ),
        err=True,
    )
    raise typer.Exit(1)


@app.command("decide")
def claims_decide(
    number: Annotated[str, typer.Argument(metavar="NUMBER", help="e.g. LP2026-000123")],
    decision: Annotated[
        Decision, typer.Argument(help="approve, reject, need-info, or appeal (an approved or rejected claim, once).")
    ],
    amount: Annotated[str | None, typer.Option("--amount", help="approve: the amount in yuan, e.g. 1200.50.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help=f"reject: one of {', '.join(REJECT_REASONS)}.")] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="reject, need-info, appeal: what the member is told, in words.")
    ] = None,
    missing: Annotated[
        list[str] | None,
        typer.Option("--missing", help="need-info: a checklist item asked for (repeatable), e.g. receipts."),
    ] = None,
) -> None:
    """Approve, reject or ask for information, or take an approved or rejected claim back into review
    on appeal (once). A SUBMITTED claim is taken into review first (both steps recorded). The member is
    told. Exit 1 when refused (moved meanwhile, not from this state, amount over the claim, appealed
    before), 2 for a wrong option."""
    from bot.services.claims import (
        APPROVED,
        NEEDS_INFO,
        REJECTED,
        UNDER_REVIEW,
        ClaimRefused,
        decide_from_cli,
        move,
        parse_yuan,
    )

    fen = None
    if decision is Decision.approve:
        fen = parse_yuan(amount or "")
        if fen is None:
            raise typer.BadParameter(
                "give the amount approved in yuan, more than 0, e.g. 1200.50", param_hint="--amount"
            )
    elif decision is Decision.reject:
        if reason not in REJECT_REASONS:
            raise typer.BadParameter(f"give one of {', '.join(REJECT_REASONS)}", param_hint="--reason")
        if not (note or "").strip():
            raise typer.BadParameter("say in words why, for the member", param_hint="--note")
    elif not (note or "").strip():
        raise typer.BadParameter(
            "say what is needed, or why it is looked at again, for the member", param_hint="--note"
        )
    to = {
        Decision.approve: APPROVED,
        Decision.reject: REJECTED,
        Decision.need_info: NEEDS_INFO,
        Decision.appeal: UNDER_REVIEW,
    }[decision]
    claim_number = _number(number)

    async def work(bot: OpenBot, tx: Tx) -> Claim:
        if decision is Decision.appeal:  # from approved or rejected only (else it would be a take), once
            claim = await tx.claims.by_number(claim_number)
            if claim is None:
                raise ClaimRefused("not_found")
            if claim.status not in (APPROVED, REJECTED):
                raise ClaimRefused("not_allowed")
            return await move(
                tx, _context(bot), claim_number, UNDER_REVIEW, actor=ACTOR, now=bot.now(), note=note,
                expected_version=claim.version,
            )  # fmt: skip
        return await decide_from_cli(
            tx,
            _context(bot),
            claim_number,
            to,
            now=bot.now(),
            actor=ACTOR,
            note=(note or "").strip() or None,
            approved_fen=fen,
            reason_code=reason if decision is Decision.reject else None,
            missing=tuple(missing or ()),
        )

    try:
        claim = in_transaction(work)
    except ClaimRefused as e:
        doing = {APPROVED: "approved", REJECTED: "rejected", NEEDS_INFO: "sent back", UNDER_REVIEW: "appealed"}[to]
        _refused(e.reason, claim_number, doing)
        return
    typer.echo(f"{claim.number}: {claim.status}")


@app.command("paid")
def claims_paid(
    number: Annotated[str, typer.Argument(metavar="NUMBER", help="e.g. LP2026-000123")],
    ref: Annotated[str, typer.Option("--ref", help="The bank's or Alipay's payment reference.")],
) -> None:
    """Mark an approved claim paid, with its payment reference. The member is told."""
    from bot.services.claims import PAID, ClaimRefused, move

    if not ref.strip():
        raise typer.BadParameter("give the payment reference", param_hint="--ref")
    claim_number = _number(number)

    async def work(bot: OpenBot, tx: Tx) -> Claim:
        return await move(tx, _context(bot), claim_number, PAID, actor=ACTOR, now=bot.now(), payment_ref=ref)

    try:
        claim = in_transaction(work)
    except ClaimRefused as e:
        _refused(e.reason, claim_number, "marked paid")
        return
    typer.echo(f"{claim.number}: paid ({claim.payment_ref})")


EXPORT_COLUMNS = (
    "number",
    "member",
    "type",
    "incident_date",
    "status",
    "claimed_yuan",
    "approved_yuan",
    "payout_kind",
    "holder",
    "account",
    "id_number",
    "reason_code",
    "payment_ref",
    "documents",
    "created_at",
    "updated_at",
)


@app.command("export")
def claims_export(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM: the claims submitted that month (UTC).")],
    out: Annotated[str, typer.Option("--out", help="The CSV file to write, e.g. claims.csv.")],
    unmasked: Annotated[
        bool, typer.Option("--unmasked", help="Full payout details and ID numbers (for the payer). Audited.")
    ] = False,
) -> None:
    """A month's claims as CSV, payout details masked unless --unmasked (which is audited)."""
    import csv
    from pathlib import Path

    from bot.services.claims import yuan

    match = _MONTH.fullmatch(month.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise typer.BadParameter("write the month as YYYY-MM, e.g. 2026-11", param_hint="--month")
    year, mon = int(match.group(1)), int(match.group(2))

    async def work(bot: OpenBot, tx: Tx) -> list[dict[str, Any]]:
        rows = []
        for claim in await tx.claims.all_in_month(year, mon):
            member = await tx.members.by_id(claim.member_id)
            rows.append(
                {
                    "number": claim.number,
                    "member": member.member_number if member else "",
                    "type": claim.type,
                    "incident_date": claim.incident_date.isoformat(),
                    "status": claim.status,
                    "claimed_yuan": yuan(claim.claimed_fen),
                    "approved_yuan": yuan(claim.approved_fen) if claim.approved_fen is not None else "",
                    **_payout(bot, claim, masked=not unmasked),
                    "reason_code": claim.reason_code or "",
                    "payment_ref": claim.payment_ref or "",
                    "documents": " ".join(d.item for d in await tx.claims.documents(claim.id)),
                    "created_at": claim.created_at.isoformat(timespec="seconds"),
                    "updated_at": claim.updated_at.isoformat(timespec="seconds"),
                }
            )
        if unmasked:  # who took everyone's bank details, and when; the month is the subject
            await tx.audit.record(bot.now(), ACTOR, "claims.exported_unmasked", f"{year:04d}-{mon:02d}")
        return rows

    # Unmasked needs a database it can write its audit entry to; masked may read a read-only copy.
    rows = in_transaction(work, reading=not unmasked)
    with Path(out).open("w", encoding="utf-8-sig", newline="") as f:  # the BOM lets Excel read the Chinese
        writer = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    typer.echo(f"{len(rows)} claims of {year:04d}-{mon:02d} written to {out}" + (" (unmasked)" if unmasked else ""))
