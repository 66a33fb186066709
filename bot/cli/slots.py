"""`gigunion slots …` and `gigunion bookings …`: consultation times from the desk, and who booked them.

Times are typed and shown in the union profile's time zone and stored in UTC. A slot belongs to a
counsellor, a staff account with the counsellor (or admin) role; its place is a rest station of the
profile (its number, from 0, or its name), or "phone" or "video".
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import in_transaction

if TYPE_CHECKING:
    from bot.cli.common import OpenBot
    from bot.config import UnionProfile
    from storage import Tx
    from storage.bookings import Booking, Slot

app = typer.Typer(help="Consultation times counsellors offer: add, import, list.", no_args_is_help=True)
bookings_app = typer.Typer(help="Members' consultation bookings.", no_args_is_help=True)

COUNSELLING_ROLES = ("counsellor", "admin")
MAX_COUNT = 100
MAX_CAPACITY = 100
CSV_COLUMNS = ("kind", "counsellor", "station", "start", "count", "every", "capacity")
_EVERY = re.compile(r"(?:(\d+)h)?(?:(\d+)m?)?")
_START_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


class Bad(ValueError):
    """A value an operator typed that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Batch:
    kind: str
    counsellor: str
    station: str
    starts: list[datetime]
    duration: timedelta
    capacity: int


def parse_every(text: str) -> timedelta:
    """ "45m", "1h", "1h30m", "90" (minutes) -> a positive time."""
    match = _EVERY.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise Bad(f"{text!r} is no interval; write it like 45m, 1h or 1h30m")
    minutes = int(match.group(1) or 0) * 60 + int(match.group(2) or 0)
    if not 5 <= minutes <= 24 * 60:
        raise Bad(f"{text!r}: the interval must be from 5 minutes to 24 hours")
    return timedelta(minutes=minutes)


def parse_station(profile: UnionProfile, text: str, *, remote: bool = True) -> str:
    """A station's number or name (in any language), or with `remote` "phone" or "video" -> what a slot
    stores."""
    typed = text.strip()
    if remote and typed.lower() in ("phone", "video"):
        return typed.lower()
    if typed.isdigit() and int(typed) < len(profile.stations):
        return str(int(typed))
    for index, station in enumerate(profile.stations):
        if typed.casefold() in (str(name).casefold() for name in station.name.by_lang.values()):
            return str(index)
    names = ", ".join(f"{i} {s.name(profile.default_language)}" for i, s in enumerate(profile.stations))
    raise Bad(f"{text!r} is no station; use a number or name ({names})" + (", phone or video" if remote else ""))


def parse_start(profile: UnionProfile, text: str) -> datetime:
    from zoneinfo import ZoneInfo

    for form in _START_FORMATS:
        try:
            local = datetime.strptime(text.strip(), form)
        except ValueError:
            continue
        return local.replace(tzinfo=ZoneInfo(profile.timezone))
    raise Bad(f'{text!r} is no start time; write it like "2026-12-03 14:00" ({profile.timezone})')


def whole(text: str | int, name: str, low: int, high: int) -> int:
    try:
        number = int(str(text).strip())
    except ValueError:
        raise Bad(f"{name} {text!r} is no whole number") from None
    if not low <= number <= high:
        raise Bad(f"{name} must be from {low} to {high}, not {number}")
    return number


def batch(
    profile: UnionProfile,
    *,
    kind: str,
    counsellor: str,
    station: str,
    start: str,
    count: int | str,
    every: str | None,
    capacity: int | str | None,
    now: datetime,
) -> Batch:
    """Check what was typed for one run of slots (the counsellor's role is checked in the database)."""
    consult = profile.consult_kind(kind.strip())
    if consult is None:
        raise Bad(f"{kind!r} is no consultation kind; use one of {', '.join(k.id for k in profile.consult_kinds)}")
    place = parse_station(profile, station)
    mode = "station" if place.isdigit() else place
    if mode not in consult.modes:
        raise Bad(f"{consult.id} is not given {'in person' if place.isdigit() else 'by ' + place}")
    first = parse_start(profile, start)
    number = whole(count, "count", 1, MAX_COUNT)
    duration = timedelta(minutes=consult.duration_minutes)
    step = parse_every(every) if every and str(every).strip() else duration
    if step < duration:
        raise Bad(f"every {every} is shorter than a {consult.id} session ({consult.duration_minutes} minutes)")
    if first <= now:
        raise Bad(f"{start} has passed")
    places = whole(capacity if capacity not in (None, "") else 1, "capacity", 1, MAX_CAPACITY)
    return Batch(consult.id, counsellor.strip(), place, [first + i * step for i in range(number)], duration, places)


async def _add(tx: Tx, batches: list[Batch], now: datetime) -> list[Slot] | str:
    """The slots made, or the first counsellor who is none (nothing is made then)."""
    for b in batches:
        staffer = await tx.staff.get(b.counsellor)
        if staffer is None or not set(COUNSELLING_ROLES) & staffer.roles:
            return b.counsellor
    made: list[Slot] = []
    for b in batches:
        made += await tx.bookings.add_slots(
            kind=b.kind,
            counsellor=b.counsellor,
            station=b.station,
            starts=b.starts,
            duration=b.duration,
            capacity=b.capacity,
            now=now,
        )
    return made


def _slot_json(profile: UnionProfile, slot: Slot) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(profile.timezone)
    return {
        "id": slot.id,
        "kind": slot.kind,
        "counsellor": slot.counsellor,
        "station": slot.station,
        "start": slot.start_at.astimezone(zone).isoformat(timespec="minutes"),
        "end": slot.end_at.astimezone(zone).isoformat(timespec="minutes"),
        "capacity": slot.capacity,
        "booked": slot.booked,
        "cancelled": slot.cancelled,
    }


def _show_slots(profile: UnionProfile, slots: list[Slot], as_json: bool) -> None:
    import json

    for slot in slots:
        row = _slot_json(profile, slot)
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            flags = " cancelled" if slot.cancelled else ""
            typer.echo(
                f"{row['id']}\t{row['kind']}\t{row['start'][:16].replace('T', ' ')}–{row['end'][11:16]}\t"
                f"{row['station']}\t{row['counsellor']}\t{slot.booked}/{slot.capacity}{flags}"
            )


def _make(batches_of: Any, as_json: bool) -> None:
    from bot.errors import EXIT_USAGE

    async def work(bot: OpenBot, tx: Tx) -> tuple[UnionProfile, list[Slot] | str]:
        now = bot.now()
        try:
            batches = batches_of(bot.profile, now)
        except Bad as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(EXIT_USAGE) from None
        return bot.profile, await _add(tx, batches, now)

    profile, made = in_transaction(work)
    if isinstance(made, str):
        typer.echo(
            f"{made} is no counsellor: add the account first with "
            f"`gigunion staff add {made} --role counsellor --name NAME`",
            err=True,
        )
        raise typer.Exit(1)
    _show_slots(profile, made, as_json)


@app.command("add")
def slots_add(
    kind: Annotated[str, typer.Option(help="The consultation kind, e.g. legal, labour_policy, psych.")],
    counsellor: Annotated[str, typer.Option(help="The counsellor's staff account, e.g. console:li.")],
    station: Annotated[str, typer.Option(help="A rest station's number (from 0) or name, or phone, or video.")],
    start: Annotated[str, typer.Option(help='The first start, "YYYY-MM-DD HH:MM" in the union\'s time zone.')],
    count: Annotated[int, typer.Option(help="How many slots, one after another.")] = 1,
    every: Annotated[str | None, typer.Option(help="Between starts: 45m, 1h, 1h30m (default: a session).")] = None,
    capacity: Annotated[int, typer.Option(help="Places in each slot (more than 1: a group session).")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per slot made.")] = False,
) -> None:
    """Publish COUNT consultation times of KIND for a counsellor, EVERY apart from START."""

    def batches(profile: UnionProfile, now: datetime) -> list[Batch]:
        return [
            batch(
                profile,
                kind=kind,
                counsellor=counsellor,
                station=station,
                start=start,
                count=count,
                every=every,
                capacity=capacity,
                now=now,
            )
        ]

    _make(batches, as_json)


@app.command("import")
def slots_import(
    path: Annotated[Path, typer.Argument(metavar="CSV", help=f"Columns: {','.join(CSV_COLUMNS)} (a header line).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per slot made.")] = False,
) -> None:
    """Publish the times listed in a CSV file: all of them, or none when a line is wrong."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
            header = list(rows[0]) if rows else []
    except OSError as e:
        typer.echo(f"{path}: {e.strerror}", err=True)
        raise typer.Exit(2) from None
    except UnicodeDecodeError:
        typer.echo(f"{path} is not UTF-8 text; save it as UTF-8 CSV", err=True)
        raise typer.Exit(2) from None
    missing = [c for c in CSV_COLUMNS[:5] if c not in header]
    if not rows or missing:
        typer.echo(f"{path}: needs a header line with {','.join(CSV_COLUMNS)}", err=True)
        raise typer.Exit(2)

    def batches(profile: UnionProfile, now: datetime) -> list[Batch]:
        out = []
        for line, row in enumerate(rows, start=2):
            try:
                out.append(
                    batch(
                        profile,
                        **{c: (row.get(c) or "").strip() for c in CSV_COLUMNS[:4]},
                        count=(row.get("count") or "1").strip(),
                        every=row.get("every"),
                        capacity=row.get("capacity"),
                        now=now,
                    )
                )
            except Bad as e:
                raise Bad(f"{path} line {line}: {e}") from None
        return out

    _make(batches, as_json)


@app.command("list")
def slots_list(
    kind: Annotated[str | None, typer.Option(help="Only this consultation kind.")] = None,
    counsellor: Annotated[str | None, typer.Option(help="Only this counsellor's.")] = None,
    past: Annotated[bool, typer.Option("--past", help="Include times that have begun.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per slot, one per line.")] = False,
) -> None:
    """List consultation times, soonest first, with places booked."""

    async def work(bot: OpenBot, tx: Tx) -> tuple[UnionProfile, list[Slot]]:
        since = None if past else bot.now()
        return bot.profile, await tx.bookings.slots(since=since, kind=kind, counsellor=counsellor)

    profile, slots = in_transaction(work, reading=True)
    _show_slots(profile, slots, as_json)


@bookings_app.command("list")
def bookings_list(
    status: Annotated[str | None, typer.Option(help="Only booked, cancelled, no_show or done.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per booking, one per line.")] = False,
) -> None:
    """List bookings by their time: reference, slot, status, member number (no names or topics)."""
    import json
    from zoneinfo import ZoneInfo

    from storage.bookings import STATUSES

    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"{status!r} is no booking status; use one of {', '.join(STATUSES)}")

    async def work(bot: OpenBot, tx: Tx) -> tuple[UnionProfile, list[tuple[Booking, str | None]]]:
        rows = []
        for b in await tx.bookings.all(status=status):
            member = await tx.members.by_id(b.member_id)
            rows.append((b, member.member_number if member else None))
        return bot.profile, rows

    profile, rows = in_transaction(work, reading=True)
    zone = ZoneInfo(profile.timezone)
    for b, number in rows:
        row = {
            "reference": b.reference,
            "slot_id": b.slot_id,
            "status": b.status,
            "member": number,
            "mode": b.mode,
            "station": b.station,
            "start": b.start_at.astimezone(zone).isoformat(timespec="minutes"),
            "rating": b.rating,
            "cancelled_by": b.cancelled_by,
        }
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            rating = f"\t{b.rating}★" if b.rating else ""
            typer.echo(
                f"{b.reference}\t{b.slot_id}\t{row['start'][:16].replace('T', ' ')}\t{b.status}\t{number}{rating}"
            )
