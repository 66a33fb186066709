"""`gigunion events …` through real processes: create (with --json), list, show with sign-up counts,
export of the sign-up list (who is confirmed, who waits in what order, who checked in), cancel telling
members, and wrong input answered with exit 2 (bad time, capacity 0 or "abc", a deadline after the
event, an unknown station), an unknown event with exit 1, no database with exit 3."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.services import events as service
from storage.schema import outbox
from tests.conftest import gigunion_env
from tests.test_claims_cli import _open
from tests.test_claims_domain import SECRET

HERE = Path(__file__).resolve().parent.parent
# Far enough ahead that the test never runs after it, whatever today is.
WHEN = "2030-12-05 14:00"
DEADLINE = "2030-12-04 20:00"


def gigunion(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=gigunion_env(tmp_path, secret_key=SECRET),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=HERE,
    )


def create(tmp_path: Path, *extra: str, capacity: str = "2") -> subprocess.CompletedProcess[str]:
    return gigunion(
        tmp_path,
        "events",
        "create",
        "--title",
        "微笑集市",
        "--time",
        WHEN,
        "--capacity",
        capacity,
        "--deadline",
        DEADLINE,
        "--description",
        "免费理发、测血压",
        *extra,
    )


def test_create_list_show_in_the_unions_time_zone(tmp_path: Path) -> None:
    made = create(tmp_path, "--station", "0", "--json")
    assert made.returncode == 0, made.stderr
    event = json.loads(made.stdout)
    assert event["id"] == 1 and event["title"] == "微笑集市" and event["capacity"] == 2
    assert event["starts_at"] == "2030-12-05T14:00+08:00" and event["signup_deadline"] == "2030-12-04T20:00+08:00"
    assert event["station"] == "0" and event["station_name"] and event["place"] is None
    by_name = create(tmp_path, "--station", event["station_name"], "--json")
    assert json.loads(by_name.stdout)["station"] == "0"
    elsewhere = create(tmp_path, "--place", "西湖文化广场", "--json", capacity="50")
    assert json.loads(elsewhere.stdout) | {"id": 0} == json.loads(elsewhere.stdout) | {
        "id": 0,
        "place": "西湖文化广场",
        "station": None,
    }
    listed = gigunion(tmp_path, "events", "list", "--json")
    assert listed.returncode == 0
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert all({"confirmed", "waiting", "checked_in", "left"} <= set(r) for r in rows)
    plain = gigunion(tmp_path, "events", "list")
    assert "微笑集市" in plain.stdout and "2030-12-05 14:00" in plain.stdout and "0/2 +0 waiting" in plain.stdout
    shown = gigunion(tmp_path, "events", "show", "1", "--json")
    assert json.loads(shown.stdout)["description"] == "免费理发、测血压"
    assert "title: 微笑集市" in gigunion(tmp_path, "events", "show", "1").stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--time", "2030-13-05 14:00"], "no start time"),
        (["--time", "tomorrow"], "no start time"),
        (["--time", "2020-12-05 14:00", "--deadline", "2020-12-04 14:00"], "has passed"),
        (["--capacity", "0"], "--capacity must be from 1"),
        (["--capacity", "abc"], "no whole number"),
        (["--capacity", "-3"], "--capacity must be from 1"),
        (["--deadline", "2030-12-06 10:00"], "after the event starts"),
        (["--deadline", "soon"], "no start time"),
        (["--station", "9"], "no station"),
        (["--station", "火星驿站"], "no station"),
        (["--station", "phone"], "no station"),
        (["--station", "0", "--place", "公园"], "one of them"),
        ([], "one of them"),
        (["--title", "   "], "--title"),
    ],
)
def test_wrong_input_is_exit_2_with_what_was_wrong_and_nothing_made(tmp_path: Path, args: list[str], says: str) -> None:
    base = {"--title": "微笑集市", "--time": WHEN, "--capacity": "2", "--deadline": DEADLINE}
    where = [] if "--station" in args or "--place" in args or not args else ["--place", "公园"]
    given = dict(zip(args[::2], args[1::2], strict=True))
    options = [x for k, v in (base | given).items() if k not in ("--station", "--place") for x in (k, v)]
    options += [x for k, v in given.items() if k in ("--station", "--place") for x in (k, v)] + where
    done = gigunion(tmp_path, "events", "create", *options)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in done.stderr and "Traceback" not in done.stderr
    assert "video" not in done.stderr  # consultations may be by phone or video; events may not
    assert gigunion(tmp_path, "events", "list", "--json").stdout == ""


def test_unknown_event_is_exit_1_and_a_bad_id_exit_2(tmp_path: Path) -> None:
    assert create(tmp_path, "--station", "0").returncode == 0
    for args in (["show", "7"], ["export", "7", "--out", str(tmp_path / "x.csv")], ["cancel", "7"]):
        done = gigunion(tmp_path, "events", *args)
        assert done.returncode == 1 and "no event 7" in done.stderr, args
    assert gigunion(tmp_path, "events", "show", "abc").returncode == 2
    assert not (tmp_path / "x.csv").exists()


def test_no_database_is_exit_3(tmp_path: Path) -> None:
    done = gigunion(tmp_path, "events", "list")
    assert done.returncode == 3 and "Traceback" not in done.stderr


async def test_export_lists_confirmed_then_waiting_in_order_with_check_ins_and_cancel_tells_them(
    tmp_path: Path,
) -> None:
    assert create(tmp_path, "--station", "0").returncode == 0
    app = await _open(tmp_path)
    now = datetime(2030, 12, 1, tzinfo=UTC)
    try:
        async with app.db.transaction() as tx:
            from storage.members import NewMember

            members = []
            for n in range(1, 5):
                number = f"HB2030{n:06d}"
                member = await tx.members.create(
                    NewMember(
                        number, app.keyring.card_code(number), f"h{n}", "enc", f"骑手{n}", "美团", "courier", None, now
                    )
                )
                assert member is not None
                await tx.members.link(f"console:r{n}", member.id, now)
                members.append(member)
            for member in members:
                await service.sign_up(app, tx, 1, member.id, now)
            await service.check_in(app, tx, 1, members[0].card_code, now)
    finally:
        await app.db.close()
    shown = json.loads(gigunion(tmp_path, "events", "show", "1", "--json").stdout)
    assert (shown["confirmed"], shown["waiting"], shown["checked_in"], shown["left"]) == (2, 2, 1, 0)
    out = tmp_path / "signups.csv"
    done = gigunion(tmp_path, "events", "export", "1", "--out", str(out))
    assert done.returncode == 0 and "2 confirmed and 2 waiting" in done.stdout
    with out.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [(r["member_number"], r["name"], r["status"], r["position"]) for r in rows] == [
        ("HB2030000001", "骑手1", "confirmed", ""),
        ("HB2030000002", "骑手2", "confirmed", ""),
        ("HB2030000003", "骑手3", "waiting", "1"),
        ("HB2030000004", "骑手4", "waiting", "2"),
    ]
    assert rows[0]["checked_in_at"].startswith("2030-12-01T08:00") and rows[1]["checked_in_at"] == ""
    cancelled = gigunion(tmp_path, "events", "cancel", "1")
    assert cancelled.returncode == 0 and "4 members" in cancelled.stdout
    assert gigunion(tmp_path, "events", "cancel", "1").returncode == 1
    app = await _open(tmp_path)
    try:
        async with app.db.transaction() as tx:
            told = [r.user_key for r in await tx.conn.execute(select(outbox.c.user_key).order_by(outbox.c.id))]
            audit = [(e.action, e.subject) for e in await tx.audit.entries()]
    finally:
        await app.db.close()
    assert sorted(told) == [f"console:r{n}" for n in range(1, 5)]
    assert ("event.exported", "1") in audit
    assert json.loads(gigunion(tmp_path, "events", "show", "1", "--json").stdout)["cancelled"] is True


def test_the_reminder_is_scheduled_a_day_before(tmp_path: Path) -> None:
    assert create(tmp_path, "--station", "0").returncode == 0
    jobs = gigunion(tmp_path, "jobs", "list")
    # 14:00 in Shanghai the day before, in UTC.
    assert jobs.returncode == 0 and "pending 1; next due 2030-12-04 06:00:00 UTC" in jobs.stdout
