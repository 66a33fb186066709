"""`gigunion complaints …` through real processes: list (--json, --status), show, triage, route, reply,
close, and the exit codes for an unknown id, an unknown team, category or outcome, and a complaint
someone moved meanwhile."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from bot.cli import complaints as cli
from bot.services import complaints as service
from tests.conftest import gigunion_env
from tests.test_claims_cli import _open
from tests.test_claims_domain import SECRET
from tests.test_complaints_domain import TEXT, draft

HERE = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 30)


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


def seed(tmp_path: Path, count: int = 1, **changes) -> list[str]:  # type: ignore[no-untyped-def]
    """`count` new complaints; their ids."""

    async def go() -> list[str]:
        app = await _open(tmp_path)
        try:
            async with app.db.transaction() as tx:
                return [(await service.submit(app, tx, draft(**changes), DAY))[0].id for _ in range(count)]
        finally:
            await app.db.close()

    return asyncio.run(go())


def listed(tmp_path: Path, *args: str) -> list[dict]:  # type: ignore[type-arg]
    done = gigunion(tmp_path, "complaints", "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_help_texts_name_the_services_states_and_categories() -> None:
    assert cli.STATUSES == service.STATUSES
    assert cli.CATEGORIES == service.CATEGORIES


def test_list_show_and_a_whole_cycle(tmp_path: Path) -> None:
    first, second = seed(tmp_path, 2)
    rows = listed(tmp_path)
    assert {r["id"] for r in rows} == {first, second}
    for row in rows:
        assert {"id", "status", "category", "target", "day"} <= row.keys()
        assert (row["status"], row["category"], row["target"], row["day"]) == ("new", "pay", "美团", "2026-11-30")
        # Nothing about a sender: there is nothing to print.
        assert not {"user", "user_key", "member", "member_id", "phone", "name"} & row.keys()
    plain = gigunion(tmp_path, "complaints", "list")
    assert plain.returncode == 0 and first in plain.stdout and "美团" in plain.stdout

    done = gigunion(tmp_path, "complaints", "triage", first, "--category", "platform_rules")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{first}: triaged (platform_rules), version 2"
    done = gigunion(tmp_path, "complaints", "route", first, "--team", "legal")
    assert done.returncode == 0 and "routed (legal)" in done.stdout
    done = gigunion(tmp_path, "complaints", "reply", first, "--text", "已转法律援助组，三天内回复您。")
    assert done.returncode == 0 and "answered" in done.stdout
    assert [r["id"] for r in listed(tmp_path, "--status", "answered")] == [first]
    assert [r["id"] for r in listed(tmp_path, "-s", "new")] == [second]

    shown = gigunion(tmp_path, "complaints", "show", first, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["description"] == TEXT and data["team"] == "legal" and data["category"] == "platform_rules"
    assert data["thread"] == [
        {"author": "union", "day": "2026-11-30", "text": "已转法律援助组，三天内回复您。", "pictures": 0}
    ]
    assert [(h["from"], h["to"]) for h in data["history"]] == [
        (None, "new"),
        ("new", "triaged"),
        ("triaged", "routed"),
        ("routed", "answered"),
    ]
    text = gigunion(tmp_path, "complaints", "show", first.upper())  # as someone may type it
    assert text.returncode == 0 and TEXT in text.stdout and "routed -> answered" in text.stdout

    done = gigunion(tmp_path, "complaints", "close", first, "--outcome", "resolved")
    assert done.returncode == 0 and "closed (resolved)" in done.stdout
    assert first not in {r["id"] for r in listed(tmp_path)}  # closed ones only when asked for
    assert [r["id"] for r in listed(tmp_path, "--status", "closed")] == [first]
    again = gigunion(tmp_path, "complaints", "reply", first, "--text", "再补一句")
    assert again.returncode == 1 and "closed" in again.stderr


def test_wrong_input_and_exit_codes(tmp_path: Path) -> None:
    (one,) = seed(tmp_path)
    unknown = gigunion(tmp_path, "complaints", "show", "nosuchid")
    assert unknown.returncode == 1 and "no complaint" in unknown.stderr
    for args in (
        ("triage", "nosuchid", "--category", "pay"),
        ("route", "nosuchid", "--team", "legal"),
        ("reply", "nosuchid", "--text", "你好"),
        ("close", "nosuchid", "--outcome", "resolved"),
    ):
        done = gigunion(tmp_path, "complaints", *args)
        assert done.returncode == 1 and "no complaint with id nosuchid" in done.stderr, args
    for args in (
        ("route", one, "--team", "marketing"),
        ("triage", one, "--category", "weather"),
        ("close", one, "--outcome", "whatever"),
        ("reply", one, "--text", "   "),
        ("reply", one, "--text", "字" * 1001),
        ("list", "--status", "lost"),
        ("route", one),  # no team
        ("triage", one, "--category", "pay", "--version", "0"),
    ):
        done = gigunion(tmp_path, "complaints", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    # Nothing changed by any of it.
    (row,) = listed(tmp_path)
    assert (row["status"], row["version"]) == ("new", 1)
    # Triage is for what is not yet routed.
    assert gigunion(tmp_path, "complaints", "route", one, "--team", "legal").returncode == 0
    late = gigunion(tmp_path, "complaints", "triage", one, "--category", "hours")
    assert late.returncode == 1 and "cannot be triaged" in late.stderr


def test_a_complaint_moved_meanwhile_is_refused_not_overwritten(tmp_path: Path) -> None:
    (one,) = seed(tmp_path)
    seen = json.loads(gigunion(tmp_path, "complaints", "show", one, "--json").stdout)["version"]
    # Someone else routes it meanwhile…
    assert gigunion(tmp_path, "complaints", "route", one, "--team", "legal").returncode == 0
    # …so a decision taken on what was seen is refused.
    done = gigunion(tmp_path, "complaints", "route", one, "--team", "union_office", "--version", str(seen))
    assert done.returncode == 1
    assert "changed by someone else meanwhile (now routed, version 2)" in done.stderr
    assert json.loads(gigunion(tmp_path, "complaints", "show", one, "--json").stdout)["team"] == "legal"


def test_no_database_is_exit_3(tmp_path: Path) -> None:
    done = gigunion(tmp_path, "complaints", "list")
    assert done.returncode == 3 and "Traceback" not in done.stderr
