"""The `gigunion` command package: what it loads to start, and what a command that only reads does to
the database (commands' outputs and exit codes are tested as real processes in tests/test_console.py
and tests/telegram/test_process.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings
from tests.conftest import gigunion_env
from tests.test_postgres import pg_url  # noqa: F401 (a fixture)

# Each of these costs a command that does not use it tens of milliseconds before it can start.
HEAVY = ("alembic", "telegram", "wechatpy", "starlette", "uvicorn", "sqlalchemy.ext.asyncio", "storage", "bot.runtime")

BUILD_AND_HELP = f"""
import json, sys
import typer.main
import bot.cli
typer.main.get_command(bot.cli.app)
try:
    bot.cli.app(["--help"], prog_name="gigunion")
except SystemExit:
    pass
print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
"""

# Runs commands in one process, counting migrations; prints what it saw as one JSON line at the end.
RUN_COUNTING_MIGRATIONS = """
import json, sys
import storage.migrate
real, runs = storage.migrate.upgrade, []

async def counted(db, revision="head"):
    runs.append(revision)
    await real(db, revision)

storage.migrate.upgrade = counted
import bot.cli
codes, migrations = [], []
for line in sys.argv[1:]:
    before = len(runs)
    codes.append(bot.cli.app(line.split(), prog_name="gigunion", standalone_mode=False) or 0)
    migrations.append(len(runs) - before)
print(json.dumps({"codes": codes, "migrations": migrations, "runtime": "bot.runtime" in sys.modules}))
"""


def python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return gigunion_env(tmp_path, "bot.db")


def test_building_the_app_and_its_help_loads_no_heavy_library(env: dict[str, str]) -> None:
    done = python(BUILD_AND_HELP, env)
    assert done.returncode == 0, done.stderr
    assert "Commands" in done.stdout
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_a_command_s_help_loads_no_heavy_library(env: dict[str, str]) -> None:
    code = BUILD_AND_HELP.replace('["--help"]', '["staff", "add", "--help"]')
    done = python(code, env)
    assert done.returncode == 0, done.stderr
    assert "admin, claims" in done.stdout
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_the_roles_in_help_texts_are_the_roles_storage_knows() -> None:
    from bot.cli.common import ROLES
    from storage.staff import ROLES as STORAGE_ROLES

    assert ROLES == STORAGE_ROLES


def test_the_head_read_from_the_scripts_is_alembic_s_head() -> None:
    from alembic.script import ScriptDirectory

    from bot.cli.common import head_revisions
    from storage.migrate import MIGRATIONS

    assert head_revisions() == frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def reading_commands_leave_the_database_alone(env: dict[str, str]) -> None:
    reads = ["staff list", "members list --json", "members show HB0000", "card verify AAAA-BBBB"]
    done = python(RUN_COUNTING_MIGRATIONS, env, "db upgrade", *reads, "staff add console:ann --role admin --name Ann")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    # The first command makes the schema; after that nothing runs a migration.
    assert seen["migrations"] == [1, 0, 0, 0, 0, 0]
    assert seen["codes"] == [0, 0, 0, 1, 1, 0]
    # Housekeeping, flows and channels live in the runtime; a reading command never loads it.
    assert seen["runtime"] is False
    assert "console:ann\tadmin\tAnn" in python(RUN_COUNTING_MIGRATIONS, env, "staff list").stdout


def test_reading_commands_run_no_migration_on_a_current_database(env: dict[str, str]) -> None:
    reading_commands_leave_the_database_alone(env)


async def test_reading_commands_run_no_migration_on_a_current_postgresql_database(
    env: dict[str, str],
    pg_url: str,  # noqa: F811
) -> None:
    reading_commands_leave_the_database_alone({**env, "GIGUNION_DATABASE_URL": pg_url})


def test_db_upgrade_migrates_even_a_current_database(env: dict[str, str]) -> None:
    done = python(RUN_COUNTING_MIGRATIONS, env, "db upgrade", "db upgrade")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["migrations"] == [1, 1]


async def test_a_database_behind_the_newest_migration_is_not_current(settings: Settings) -> None:
    from sqlalchemy import text

    from bot.cli.common import open_bot, schema_is_current

    async with open_bot(settings) as bot:
        assert await schema_is_current(bot.db)
        async with bot.db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        assert not await schema_is_current(bot.db)
        async with bot.db.engine.begin() as conn:
            await conn.execute(text("DROP TABLE alembic_version"))
        assert not await schema_is_current(bot.db)


def gigunion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_jobs_run_runs_what_is_due_once_and_jobs_list_shows_waiting_and_failed(
    env: dict[str, str], tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from storage import Database

    first = gigunion(env, "jobs", "run")
    assert first.returncode == 0 and first.stdout.strip() == "1 job(s) run", first.stderr  # housekeeping, due at once
    assert gigunion(env, "jobs", "run").stdout.strip() == "0 job(s) run"  # it has moved itself ten minutes on
    db = Database(env["GIGUNION_DATABASE_URL"])
    now = datetime.now(UTC)
    async with db.transaction() as tx:
        await tx.jobs.schedule("no-such-kind", now - timedelta(hours=1), now, {"booking": 7}, key="x:1")
        [claimed] = await tx.jobs.claim_due(["no-such-kind"], "a-runner", now, timedelta(minutes=1), 1)
        await tx.jobs.fail(claimed, "ValueError", now, max_attempts=1, base=timedelta(0), cap=timedelta(0))
    await db.close()
    listed = json.loads(gigunion(env, "jobs", "list", "--json").stdout)
    assert listed["counts"]["pending"] == 1 and [j["kind"] for j in listed["failed"]] == ["no-such-kind"]
    assert listed["failed"][0]["last_error"] == "ValueError"
    assert datetime.fromisoformat(listed["next_due"]) > now + timedelta(minutes=9)
    text = gigunion(env, "jobs", "list").stdout
    assert "failed\t" in text and "no-such-kind" in text and "housekeeping" not in text.split("\n", 1)[1]
