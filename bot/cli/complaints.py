"""`gigunion complaints …`: the anonymous complaints desk (list, show, triage, route, reply, close).

Changes go through `bot.services.complaints` exactly as the chat's do: one conditional statement each,
so a complaint someone moved meanwhile is refused (exit 1), never overwritten. There is nothing to
print about who wrote a complaint: nothing about the sender is kept. Exit codes: 0 done, 1 refused
(unknown id, moved meanwhile, not from this state), 2 wrong usage, 3 the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import in_transaction, settings

if TYPE_CHECKING:
    from bot.cli.common import OpenBot
    from storage import Tx
    from storage.complaints import Complaint

app = typer.Typer(
    help="Anonymous complaints: the queue, triage, routing, replies and closing (who wrote one is never known).",
    no_args_is_help=True,
)

# Copies of bot.services.complaints.STATUSES and CATEGORIES for the help texts: importing the service
# loads SQLAlchemy. tests/test_complaints_cli.py fails when they differ.
STATUSES = ("new", "triaged", "routed", "answered", "closed")
CATEGORIES = ("pay", "hours", "safety", "platform_rules", "insurance", "discrimination", "union_service", "other")

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The complaint's id, as `list` shows it.")]
VersionOption = Annotated[
    int | None,
    typer.Option(
        "--version",
        help="The version you looked at (`show`): refused if the complaint has changed since.",
        min=1,
    ),
]


def _summary(c: Complaint) -> dict[str, Any]:
    return {
        "id": c.id,
        "status": c.status,
        "category": c.category,
        "target_kind": c.target_kind,
        "target": c.target,
        "day": c.submitted_on.isoformat(),
        "team": c.team,
        "outcome": c.outcome,
        "version": c.version,
        "updated": c.updated_on.isoformat(),
        "closed": c.closed_on.isoformat() if c.closed_on else None,
    }


def _target(row: dict[str, Any]) -> str:
    return row["target"] or row["target_kind"]


@app.command("list")
def complaints_list(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help=f"Only complaints in this state (repeatable): {', '.join(STATUSES)}."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per complaint, one per line.")] = False,
) -> None:
    """List complaints, the longest untouched first (the order to work through them). Without
    --status, every state but closed."""
    import json

    wanted = tuple(status or STATUSES[:-1])
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise typer.BadParameter(
            f"{unknown[0]!r} is no complaint state; use one of {', '.join(STATUSES)}", param_hint="--status"
        )

    async def work(bot: OpenBot, tx: Tx) -> list[dict[str, Any]]:
        counts = await tx.complaints.counts()
        total = sum(counts.get(s, 0) for s in wanted)
        return [_summary(c) for c in await tx.complaints.queue(wanted, 0, total)] if total else []

    for row in in_transaction(work, reading=True):
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            team = row["team"] or ""
            typer.echo(f"{row['id']}\t{row['status']}\t{row['category']}\t{_target(row)}\t{row['day']}\t{team}")


@app.command("show")
def complaints_show(
    complaint_id: IdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="The complaint as one JSON object.")] = False,
) -> None:
    """Show one complaint: what it is about, its text, the thread with the worker and its history."""
    import json

    from bot.services import complaints as service

    async def work(bot: OpenBot, tx: Tx) -> dict[str, Any] | None:
        complaint = await service.get(bot, tx, complaint_id)  # type: ignore[arg-type]
        if complaint is None:
            return None
        shown = _summary(complaint)
        shown["description"] = service.description(bot, complaint)  # type: ignore[arg-type]
        shown["pictures"] = len(await service.pictures(bot, tx, complaint.id))  # type: ignore[arg-type]
        shown["thread"] = [
            {"author": m.author, "day": m.on_day.isoformat(), "text": m.text, "pictures": len(m.media_ids)}
            for m in await service.thread(bot, tx, complaint.id)  # type: ignore[arg-type]
        ]
        shown["history"] = [
            {"day": h.on_day.isoformat(), "from": h.from_status, "to": h.to_status, "note": h.note}
            for h in await service.history(bot, tx, complaint.id)  # type: ignore[arg-type]
        ]
        if not bot.read_only:  # a read-only copy cannot record who looked
            await tx.audit.record(bot.now(), ACTOR, "complaint.viewed", complaint.id)
        return shown

    shown = in_transaction(work, reading=True)
    if shown is None:
        typer.echo(f"no complaint with id {complaint_id.strip()}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(shown, ensure_ascii=False))
        return
    for key in ("id", "status", "category", "target_kind", "target", "day", "team", "outcome", "closed", "version"):
        if shown[key] is not None:
            typer.echo(f"{key}: {shown[key]}")
    if shown["pictures"]:
        typer.echo(f"pictures: {shown['pictures']}")
    typer.echo("description:")
    for line in shown["description"].splitlines() or [""]:
        typer.echo(f"  {line}")
    if shown["thread"]:
        typer.echo("thread:")
        for m in shown["thread"]:
            pictures = f" (+{m['pictures']} picture(s))" if m["pictures"] else ""
            typer.echo(f"  {m['day']} {m['author']}{pictures}: {m['text']}")
    typer.echo("history:")
    for h in shown["history"]:
        note = f"  ({h['note']})" if h["note"] else ""
        typer.echo(f"  {h['day']}  {h['from'] or '-'} -> {h['to']}{note}")


ACTOR = "cli"

_REFUSALS = {
    "not_found": "no complaint with id {id}",
    "not_allowed": "{id} is {status}: it cannot be {doing} from this state",
    "closed": "{id} is closed: it cannot be {doing}",
    "moved_meanwhile": "{id} was changed by someone else meanwhile (now {status}, version {version}): look again"
    " with `gigunion complaints show {id}` before acting",
    "empty": "the reply is empty",
    "too_long": "the reply is too long (at most 1000 characters)",
}


def _refused(reason: str, complaint_id: str, doing: str) -> None:
    """The one line saying why, then exit 1."""

    async def state(bot: OpenBot, tx: Tx) -> Complaint | None:
        return await tx.complaints.get(complaint_id.strip().lower())

    now = in_transaction(state, reading=True) if reason != "not_found" else None
    line = _REFUSALS.get(reason, "{id}: refused ({reason})").format(
        id=complaint_id.strip(),
        reason=reason,
        doing=doing,
        status=now.status if now else "?",
        version=now.version if now else "?",
    )
    typer.echo(line, err=True)
    raise typer.Exit(1)


def _act(complaint_id: str, doing: str, action: Any, *args: Any, version: int | None) -> None:
    """Run one service action in a transaction on today's date (the union's time zone); print the
    new state, or why not and exit 1."""
    from bot.services import complaints as service

    async def work(bot: OpenBot, tx: Tx) -> Complaint:
        today = service.local_today(bot)  # type: ignore[arg-type]
        return await action(bot, tx, complaint_id, *args, today, expected_version=version)

    try:
        moved = in_transaction(work)
    except service.ComplaintRefused as e:
        _refused(e.reason, complaint_id, doing)
        return
    extra = {"triaged": moved.category, "routed": moved.team, "closed": moved.outcome}.get(moved.status)
    typer.echo(f"{moved.id}: {moved.status}" + (f" ({extra})" if extra else "") + f", version {moved.version}")


def _config():  # type: ignore[no-untyped-def]
    from bot.services.complaints import settings_from

    try:
        return settings_from(settings())
    except (ValueError, KeyError, TypeError) as e:
        typer.echo(f"the [complaints] settings are wrong: {e}", err=True)
        raise typer.Exit(2) from None


@app.command("triage")
def complaints_triage(
    complaint_id: IdArgument,
    category: Annotated[str, typer.Option("--category", help=f"One of {', '.join(CATEGORIES)}.")],
    version: VersionOption = None,
) -> None:
    """Accept a new complaint into the queue, correcting its category if need be (new or triaged only)."""
    from bot.services.complaints import triage

    if category not in CATEGORIES:
        raise typer.BadParameter(f"{category!r} is no category; use one of {', '.join(CATEGORIES)}")
    _act(complaint_id, "triaged", triage, category, version=version)


@app.command("route")
def complaints_route(
    complaint_id: IdArgument,
    team: Annotated[str, typer.Option("--team", help="A handling team from the [complaints] settings.")],
    version: VersionOption = None,
) -> None:
    """Hand a complaint to a team (分流): legal, company_liaison, union_office by default."""
    from bot.services.complaints import route

    teams = [t.id for t in _config().teams]
    if team not in teams:
        raise typer.BadParameter(f"{team!r} is no team; use one of {', '.join(teams)}", param_hint="--team")
    _act(complaint_id, "routed", route, team, version=version)


@app.command("reply")
def complaints_reply(
    complaint_id: IdArgument,
    text: Annotated[str, typer.Option("--text", help="The reply, as the worker reads it (at most 1000 characters).")],
    version: VersionOption = None,
) -> None:
    """Answer the worker. Nothing is sent: the worker reads it with the receipt code (查询进度)."""
    from bot.services.complaints import MAX_MESSAGE, reply

    if not text.strip():
        raise typer.BadParameter("the reply is empty", param_hint="--text")
    if len(text.strip()) > MAX_MESSAGE:
        raise typer.BadParameter(f"at most {MAX_MESSAGE} characters", param_hint="--text")
    _act(complaint_id, "answered", reply, text, version=version)


@app.command("close")
def complaints_close(
    complaint_id: IdArgument,
    outcome: Annotated[str, typer.Option("--outcome", help="How it ended, from the [complaints] settings.")],
    version: VersionOption = None,
) -> None:
    """Close a complaint with its outcome. It is deleted after the retention period (its anonymous
    figures stay for the reports)."""
    from bot.services.complaints import close

    outcomes = list(_config().outcomes)
    if outcome not in outcomes:
        raise typer.BadParameter(f"{outcome!r} is no outcome; use one of {', '.join(outcomes)}", param_hint="--outcome")
    _act(complaint_id, "closed", close, outcome, version=version)
