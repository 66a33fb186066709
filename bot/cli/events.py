"""`gigunion events …`: Events members sign up for: create, list, show, export the sign-up list, cancel.

Times are typed and shown in the union profile's time zone and stored in UTC. The place is a rest
station of the profile (its number, from 0, or its name) or, for somewhere else, a line of text. Members
sign up in the bot (活动报名, or the 报名 button of a notice); the places and the waiting list are the
database's, exactly as in the chat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import in_transaction
from bot.cli.slots import Bad, parse_start, parse_station, whole

if TYPE_CHECKING:
    from bot.cli.common import OpenBot
    from bot.config import UnionProfile
    from storage import Tx
    from storage.events import Counts, Event

app = typer.Typer(help="Events members sign up for: create, list, show, export the sign-up list.", no_args_is_help=True)

ACTOR = "cli"
MAX_CAPACITY = 100_000
MAX_TITLE = 100  # a title rides in list buttons and notices
MAX_DESCRIPTION = 1500
EXPORT_COLUMNS = ("member_number", "name", "status", "position", "signed_up_at", "checked_in_at")


@dataclass(frozen=True)
class NewEvent:
    title: str
    description: str
    station: str | None
    place: str | None
    starts_at: datetime
    deadline: datetime
    capacity: int


def checked(
    profile: UnionProfile,
    *,
    title: str,
    time: str,
    station: str | None,
    place: str | None,
    description: str,
    capacity: str,
    deadline: str | None,
    now: datetime,
) -> NewEvent:
    """What was typed for a new event, checked; Bad says which value is wrong and why."""
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise Bad(f"--title must be 1 to {MAX_TITLE} characters")
    if len(description) > MAX_DESCRIPTION:
        raise Bad(f"--description must be at most {MAX_DESCRIPTION} characters, not {len(description)}")
    if (station is None) == (place is None or not place.strip()):
        raise Bad("give the place as --station NUMBER|NAME or as --place TEXT (one of them)")
    where = None
    if station is not None:
        where = parse_station(profile, station, remote=False)  # anywhere else is --place
    starts = parse_start(profile, time)
    if starts <= now:
        raise Bad(f"{time} has passed")
    closes = parse_start(profile, deadline) if deadline else starts
    if closes > starts:
        raise Bad(f"the sign-up deadline {deadline} is after the event starts ({time})")
    if closes <= now:
        raise Bad(f"the sign-up deadline {deadline} has passed")
    places = whole(capacity, "--capacity", 1, MAX_CAPACITY)
    return NewEvent(title, description.strip(), where, place.strip() if place else None, starts, closes, places)


def _local(profile: UnionProfile, when: datetime | None) -> str | None:
    from zoneinfo import ZoneInfo

    return when.astimezone(ZoneInfo(profile.timezone)).isoformat(timespec="minutes") if when else None


def _row(profile: UnionProfile, event: Event, counts: Counts | None = None) -> dict[str, Any]:
    station_name = None
    if event.station is not None and event.station.isdigit() and int(event.station) < len(profile.stations):
        station_name = str(profile.stations[int(event.station)].name(profile.default_language))
    row: dict[str, Any] = {
        "id": event.id,
        "title": event.title,
        "starts_at": _local(profile, event.starts_at),
        "signup_deadline": _local(profile, event.signup_deadline),
        "station": event.station,
        "station_name": station_name,
        "place": event.place,
        "capacity": event.capacity,
        "taken": event.taken,
        "left": event.left,
        "cancelled": event.cancelled,
    }
    if counts is not None:
        row |= {"confirmed": counts.confirmed, "waiting": counts.waiting, "checked_in": counts.checked_in}
    return row


def _line(row: dict[str, Any]) -> str:
    where = row["station_name"] or row["place"] or ""
    flags = "\tcancelled" if row["cancelled"] else ""
    counts = f"{row['confirmed']}/{row['capacity']} +{row['waiting']} waiting" if "confirmed" in row else ""
    return f"{row['id']}\t{row['starts_at'][:16].replace('T', ' ')}\t{row['title']}\t{where}\t{counts}{flags}"


def _echo(row: dict[str, Any], as_json: bool) -> None:
    import json

    typer.echo(json.dumps(row, ensure_ascii=False) if as_json else _line(row))


def _context(bot: OpenBot):  # type: ignore[no-untyped-def]
    from bot.cli.claims import _context as context  # the profile and the locale, to tell members

    return context(bot)


@app.command("create")
def events_create(
    title: Annotated[str, typer.Option(help="What members see, e.g. 微笑集市.")],
    time: Annotated[str, typer.Option("--time", help='When it starts, "YYYY-MM-DD HH:MM" in the union\'s time zone.')],
    capacity: Annotated[str, typer.Option(help="How many places (more sign-ups go on a waiting list).")],
    station: Annotated[str | None, typer.Option(help="A rest station's number (from 0) or name.")] = None,
    place: Annotated[str | None, typer.Option(help="Anywhere else, as members should read it.")] = None,
    description: Annotated[str, typer.Option(help="What happens there, what to bring.")] = "",
    deadline: Annotated[
        str | None, typer.Option(help='Sign-up closes, "YYYY-MM-DD HH:MM" (default: when it starts).')
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the new event as one JSON object.")] = False,
) -> None:
    """Create an event members can sign up for; its reminder goes to those signed up a day before."""
    from bot.errors import EXIT_USAGE
    from bot.services.events import create_event

    async def work(bot: OpenBot, tx: Tx) -> dict[str, Any]:
        try:
            new = checked(
                bot.profile,
                title=title,
                time=time,
                station=station,
                place=place,
                description=description,
                capacity=capacity,
                deadline=deadline,
                now=bot.now(),
            )
        except Bad as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(EXIT_USAGE) from None
        event = await create_event(
            bot,  # type: ignore[arg-type]  # the clock and the database are all it uses of the bot
            tx,
            title=new.title,
            description=new.description,
            station=new.station,
            place=new.place,
            starts_at=new.starts_at,
            signup_deadline=new.deadline,
            capacity=new.capacity,
            created_by=ACTOR,
        )
        return _row(bot.profile, event, await tx.events.counts(event.id))

    _echo(in_transaction(work), as_json)


@app.command("list")
def events_list(
    past: Annotated[bool, typer.Option("--past", help="Include events that have begun.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event, one per line.")] = False,
) -> None:
    """List events, soonest first, with places taken and the waiting list."""

    async def work(bot: OpenBot, tx: Tx) -> list[dict[str, Any]]:
        events = await tx.events.all(since=None if past else bot.now())
        return [_row(bot.profile, e, await tx.events.counts(e.id)) for e in events]

    for row in in_transaction(work, reading=True):
        _echo(row, as_json)


@app.command("show")
def events_show(
    event_id: Annotated[int, typer.Argument(metavar="ID", help="The event's id (see events list).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print it as one JSON object.")] = False,
) -> None:
    """Show one event with its sign-up counts: confirmed, waiting, checked in."""

    async def work(bot: OpenBot, tx: Tx) -> dict[str, Any] | None:
        event = await tx.events.get(event_id)
        if event is None:
            return None
        return _row(bot.profile, event, await tx.events.counts(event.id)) | {"description": event.description}

    row = in_transaction(work, reading=True)
    if row is None:
        typer.echo(f"no event {event_id}", err=True)
        raise typer.Exit(1)
    if as_json:
        _echo(row, True)
        return
    for key, value in row.items():
        typer.echo(f"{key}: {'' if value is None else value}")


@app.command("export")
def events_export(
    event_id: Annotated[int, typer.Argument(metavar="ID", help="The event's id (see events list).")],
    out: Annotated[str, typer.Option("--out", help="The CSV file to write, e.g. signups.csv.")],
) -> None:
    """The sign-up list as CSV for the staff at the door: member number, name, confirmed or waiting (in
    order), checked in. It holds names, so it is audited."""
    import csv
    from pathlib import Path

    async def work(bot: OpenBot, tx: Tx) -> list[dict[str, Any]] | None:
        event = await tx.events.get(event_id)
        if event is None:
            return None
        rows, waiting = [], 0
        for listed in await tx.events.listed(event_id):
            signup = listed.signup
            waiting += signup.status == "waiting"
            rows.append(
                {
                    "member_number": listed.member_number,
                    "name": listed.name,
                    "status": signup.status,
                    "position": waiting if signup.status == "waiting" else "",
                    "signed_up_at": _local(bot.profile, signup.created_at),
                    "checked_in_at": _local(bot.profile, signup.checked_in_at) or "",
                }
            )
        await tx.audit.record(bot.now(), ACTOR, "event.exported", str(event_id))
        return rows

    rows = in_transaction(work)
    if rows is None:
        typer.echo(f"no event {event_id}", err=True)
        raise typer.Exit(1)
    try:
        with Path(out).open("w", encoding="utf-8-sig", newline="") as f:  # the BOM lets Excel read the Chinese
            writer = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    except OSError as e:
        typer.echo(f"{out}: {e.strerror}", err=True)
        raise typer.Exit(2) from None
    confirmed = sum(r["status"] == "confirmed" for r in rows)
    waiting = sum(r["status"] == "waiting" for r in rows)
    typer.echo(f"{confirmed} confirmed and {waiting} waiting for event {event_id} written to {out}")


@app.command("cancel")
def events_cancel(
    event_id: Annotated[int, typer.Argument(metavar="ID", help="The event's id (see events list).")],
) -> None:
    """Call an event off: sign-up closes, its reminder is dropped, and everyone signed up is told."""
    from bot.services.events import EventRefused, cancel_event

    async def work(bot: OpenBot, tx: Tx) -> str | int:
        try:
            await cancel_event(_context(bot), tx, event_id, bot.now())
        except EventRefused as e:
            return e.key
        return len(await tx.events.active_of(event_id))

    done = in_transaction(work)
    if done == "not_found":
        typer.echo(f"no event {event_id}", err=True)
        raise typer.Exit(1)
    if done == "cancelled":
        typer.echo(f"event {event_id} was already cancelled", err=True)
        raise typer.Exit(1)
    typer.echo(f"event {event_id} cancelled; {done} members signed up are told")
