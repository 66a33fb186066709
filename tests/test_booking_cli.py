"""`gigunion slots …` and `gigunion bookings …` through real processes: publishing times (a run, a CSV
file: all of it or none), listing them with places booked, listing bookings, and the exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.services import booking as service
from tests.test_claims_cli import _open, gigunion
from tests.test_claims_domain import make_member

SHANGHAI = ZoneInfo("Asia/Shanghai")


def first_day() -> str:
    """A day far enough ahead for any time on it to be bookable (the commands use the real clock)."""
    return (datetime.now(SHANGHAI) + timedelta(days=3)).date().isoformat()


def lines(out: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_slots_add_and_list(tmp_path: Path) -> None:
    day = first_day()
    assert gigunion(tmp_path, "staff", "add", "console:li", "--role", "counsellor", "--name", "李律师").returncode == 0
    made = gigunion(
        tmp_path, "slots", "add", "--kind", "legal", "--counsellor", "console:li", "--station", "0",
        "--start", f"{day} 14:00", "--count", "4", "--every", "45m", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    listed = gigunion(tmp_path, "slots", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    slots = lines(listed.stdout)
    assert [s["start"] for s in slots] == [f"{day}T{t}+08:00" for t in ("14:00", "14:45", "15:30", "16:15")]
    assert {(s["kind"], s["capacity"], s["booked"], s["station"]) for s in slots} == {("legal", 1, 0, "0")}
    assert lines(made.stdout) == slots
    group = gigunion(
        tmp_path, "slots", "add", "--kind", "psych", "--counsellor", "console:li", "--station", "video",
        "--start", f"{day} 09:00", "--capacity", "6",
    )  # fmt: skip
    assert group.returncode == 0 and "0/6" in group.stdout
    assert len(lines(gigunion(tmp_path, "slots", "list", "--json", "--kind", "psych").stdout)) == 1


def test_slots_add_refuses_what_cannot_be_used(tmp_path: Path) -> None:
    day = first_day()
    gigunion(tmp_path, "staff", "add", "console:li", "--role", "counsellor", "--name", "李律师")
    gigunion(tmp_path, "staff", "add", "console:zhao", "--role", "claims", "--name", "赵")
    base = ["slots", "add", "--kind", "legal", "--station", "phone", "--start", f"{day} 14:00"]
    for who in ("console:nobody", "console:zhao"):  # not staff; staff without the counsellor role
        refused = gigunion(tmp_path, *base, "--counsellor", who)
        assert refused.returncode == 1 and "counsellor" in refused.stderr
    bad = {
        ("--kind", "astrology"): "no consultation kind",
        ("--station", "9"): "no station",
        ("--start", "3 Dec 14:00"): "no start time",
        ("--start", "2020-01-01 14:00"): "has passed",
        ("--every", "10m"): "shorter than",
        ("--every", "soon"): "no interval",
        ("--count", "0"): "count must be",
        ("--capacity", "0"): "capacity must be",
    }
    for (option, value), why in bad.items():
        args = [*base, "--counsellor", "console:li"]
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
        refused = gigunion(tmp_path, *args)
        assert refused.returncode == 2 and why in refused.stderr, (option, value, refused.stderr)
    labour_by_video = [*base[:2], "--kind", "labour_policy", "--station", "video", "--start", f"{day} 14:00"]
    assert gigunion(tmp_path, *labour_by_video, "--counsellor", "console:li").returncode == 2
    assert lines(gigunion(tmp_path, "slots", "list", "--json").stdout) == []


def test_slots_import_makes_all_or_none(tmp_path: Path) -> None:
    day = first_day()
    gigunion(tmp_path, "staff", "add", "console:li", "--role", "counsellor", "--name", "李律师")
    good = tmp_path / "slots.csv"
    good.write_text(
        "kind,counsellor,station,start,count,every,capacity\n"
        f"psych,console:li,phone,{day} 09:00,2,1h,\n"
        f"legal,console:li,湖滨街道工会驿站,{day} 15:00,1,,5\n",
        encoding="utf-8",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text("utf-8") + f"legal,console:li,moon,{day} 16:00,1,,\n", encoding="utf-8")
    refused = gigunion(tmp_path, "slots", "import", str(bad))
    assert refused.returncode == 2 and "line 4" in refused.stderr
    assert lines(gigunion(tmp_path, "slots", "list", "--json").stdout) == []
    assert gigunion(tmp_path, "slots", "import", str(tmp_path / "none.csv")).returncode == 2
    done = gigunion(tmp_path, "slots", "import", str(good))
    assert done.returncode == 0, done.stderr
    slots = lines(gigunion(tmp_path, "slots", "list", "--json").stdout)
    assert [(s["kind"], s["start"][11:16], s["station"], s["capacity"]) for s in slots] == [
        ("psych", "09:00", "phone", 1),
        ("psych", "10:00", "phone", 1),
        ("legal", "15:00", "1", 5),
    ]


async def test_bookings_list_shows_references_slots_and_status(tmp_path: Path) -> None:
    day = first_day()
    gigunion(tmp_path, "staff", "add", "console:li", "--role", "counsellor", "--name", "李律师")
    gigunion(
        tmp_path, "slots", "add", "--kind", "legal", "--counsellor", "console:li", "--station", "phone",
        "--start", f"{day} 14:00", "--count", "2",
    )  # fmt: skip
    app = await _open(tmp_path)
    now = datetime.now(UTC)
    try:
        async with app.db.transaction() as tx:
            member = await make_member(tx)
            slots = await tx.bookings.slots()
            kept = await service.book(tx, app, member, slots[0].id, mode="phone", station=None, topic="工资", now=now)
            gone = await service.book(tx, app, member, slots[1].id, mode="phone", station=None, topic=None, now=now)
            await service.cancel(tx, app, gone.reference, by="member", member=member, now=now)
    finally:
        await app.db.close()
    listed = gigunion(tmp_path, "bookings", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = lines(listed.stdout)
    assert [(r["reference"], r["slot_id"], r["status"]) for r in rows] == [
        (kept.reference, slots[0].id, "booked"),
        (gone.reference, slots[1].id, "cancelled"),
    ]
    assert "工资" not in listed.stdout and "rider" not in listed.stdout  # no topics, no names
    only = lines(gigunion(tmp_path, "bookings", "list", "--json", "--status", "cancelled").stdout)
    assert [r["reference"] for r in only] == [gone.reference]
    assert gigunion(tmp_path, "bookings", "list", "--status", "lost").returncode == 2
    booked = lines(gigunion(tmp_path, "slots", "list", "--json").stdout)
    assert [s["booked"] for s in booked] == [1, 0]
    assert (datetime.fromisoformat(booked[0]["start"]) - now) > timedelta(hours=2)
