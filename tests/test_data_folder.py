"""One data folder for everything the bot keeps, found from any folder; commands that only read never
make a database or a key, leave no -wal/-shm behind, and read a database they may not write."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

JOIN_ZH = "/start\n同意\n/contact +8613800138000\n张三\n1\n1\n1\n"
READING = (["card", "verify", "AAAA-BBBB"], ["members", "list"], ["members", "show", "HB0000"], ["staff", "list"])


def gigunion(env: dict[str, str], *args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def env(private_home: Path) -> dict[str, str]:
    """The environment of an operator who set nothing: no GIGUNION_ variable (the private_home fixture
    points the platform's data folder into this test's folder)."""
    return dict(os.environ) | {"PYTHONPATH": str(Path(__file__).parents[1])}


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_card_is_genuine_from_any_folder_and_nothing_is_left_there(env: dict[str, str], tmp_path: Path) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    joined = gigunion(env, "console", "--user", "alice", cwd=here, stdin=JOIN_ZH)
    assert joined.returncode == 0, joined.stderr
    code = re.search(r"核验码：(\w{4}-\w{4})", joined.stdout).group(1)
    check = gigunion(env, "card", "verify", code, cwd=there)
    assert check.returncode == 0 and "GENUINE" in check.stdout, check.stderr
    assert files_in(here) == [] and files_in(there) == []
    where = gigunion(env, "where", cwd=there).stdout
    data = Path(re.search(r"data folder: (.+)", where).group(1))
    assert data.is_relative_to(env["HOME"]) and (data / "gigunion.db").exists() and (data / "gigunion.key").exists()


def test_where_shows_the_folder_and_files_and_makes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "union"
    shown = gigunion(env | {"GIGUNION_HOME": str(home)}, "where", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"data folder: {home}" in shown.stdout
    assert f"database:    {home / 'gigunion.db'}" in shown.stdout
    assert f"key file:    {home / 'gigunion.key'}" in shown.stdout
    assert f"media:       {home / 'media'}" in shown.stdout
    elsewhere = gigunion(
        env | {"GIGUNION_HOME": str(home), "GIGUNION_DATABASE_URL": "sqlite+aiosqlite:////x/y.db"},
        "where",
        cwd=tmp_path,
    )
    assert "database:    /x/y.db" in elsewhere.stdout and f"key file:    {home / 'gigunion.key'}" in elsewhere.stdout
    assert not home.exists()


@pytest.mark.parametrize("args", [*READING, ["jobs", "list"]])
def test_reading_commands_on_no_database_say_so_with_code_3_and_make_nothing(
    env: dict[str, str], tmp_path: Path, private_home: Path, args: list[str]
) -> None:
    home = tmp_path / "union"
    done = gigunion(env | {"GIGUNION_HOME": str(home)}, *args, cwd=private_home)
    assert done.returncode == 3, (args, done.stdout, done.stderr)
    assert f"No database at {home / 'gigunion.db'}" in done.stderr and "Traceback" not in done.stderr
    assert not home.exists() and files_in(private_home) == []
    # Nor in the platform's data folder, when nothing is set.
    done = gigunion(env, *args, cwd=private_home)
    assert done.returncode == 3 and "No database at" in done.stderr
    assert files_in(private_home) == []


def joined_home(env: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], Path, str]:
    home = tmp_path / "union"
    env = env | {"GIGUNION_HOME": str(home)}
    joined = gigunion(env, "console", "--user", "alice", cwd=tmp_path, stdin=JOIN_ZH)
    assert joined.returncode == 0, joined.stderr
    return env, home, re.search(r"核验码：(\w{4}-\w{4})", joined.stdout).group(1)


def test_reading_commands_leave_no_wal_or_shm_and_the_next_start_works(env: dict[str, str], tmp_path: Path) -> None:
    env, home, code = joined_home(env, tmp_path)
    for args in READING:
        gigunion(env, *args, cwd=tmp_path)
        assert not list(home.glob("*-wal")) and not list(home.glob("*-shm")), args
    assert gigunion(env, "card", "verify", code, cwd=tmp_path).returncode == 0
    assert not list(home.glob("*-wal")) and not list(home.glob("*-shm"))
    again = gigunion(env, "console", "--user", "bob", cwd=tmp_path, stdin="/start\n")
    assert again.returncode == 0 and "同意" in again.stdout


def test_a_read_only_copy_is_read_and_left_untouched(env: dict[str, str], tmp_path: Path) -> None:
    env, home, code = joined_home(env, tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    for p in copy.rglob("*"):
        p.chmod(0o555 if p.is_dir() else 0o444)
    copy.chmod(0o555)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*")}
    try:
        env = env | {"GIGUNION_HOME": str(copy)}
        check = gigunion(env, "card", "verify", code, cwd=tmp_path)
        assert check.returncode == 0 and "GENUINE" in check.stdout, check.stderr
        listed = gigunion(env, "members", "list", cwd=tmp_path)
        assert listed.returncode == 0 and "138****8000" in listed.stdout, listed.stderr
        assert gigunion(env, "card", "verify", "AAAA-BBBB", cwd=tmp_path).returncode == 1
        assert {p: p.stat().st_mtime_ns for p in copy.rglob("*")} == before  # no file made or written
    finally:
        copy.chmod(0o755)
