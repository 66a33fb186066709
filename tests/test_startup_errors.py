"""Start-up problems print what is wrong and what to do, in one or two lines, with the exit code for
their kind (2 configuration, 3 database or key), never a traceback: each through a real `gigunion`.

Run as root, the process is started without the capabilities that let root ignore file permissions,
so a read-only file is read-only to it as to anyone else."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigProblem
from tests.conftest import gigunion_env

CONSOLE = ("console", "--user", "ann")
AS_ROOT = os.geteuid() == 0
SETPRIV = shutil.which("setpriv")
NO_OVERRIDE = "-dac_override,-dac_read_search"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return gigunion_env(tmp_path)


def gigunion(env: dict[str, str], *args: str, ordinary_user: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bot", *args]
    if ordinary_user and AS_ROOT:
        if SETPRIV is None:
            pytest.skip("run as root without setpriv: file permissions cannot be tested")
        command = [SETPRIV, f"--inh-caps={NO_OVERRIDE}", f"--bounding-set={NO_OVERRIDE}", *command]
    return subprocess.run(command, env=env, input="/start\n", capture_output=True, text=True, timeout=120, check=False)


def told(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """Exit code `code`, at most two lines on stderr holding `words`, no traceback."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and 1 <= len(lines) <= 2, done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)
    return done.stderr


# -- configuration: exit code 2 ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("SESSION_TIMEOUT_MINUTES", "abc", ("'abc'", "1 to 1440", "minutes")),
        ("SESSION_TIMEOUT_MINUTES", "0", ("'0'", "1 to 1440")),
        ("SESSION_TIMEOUT_MINUTES", "1441", ("'1441'", "1 to 1440")),
        ("MEDIA_MAX_BYTES", "-5", ("'-5'", "bytes from 1")),
        ("LOG_LEVEL", "LOUD", ("'LOUD'", "DEBUG", "WARNING")),
        ("DATABASE_URL", "mysql://root@localhost/union", ("sqlite+aiosqlite:///", "postgresql+asyncpg://")),
    ],
)
def test_a_bad_value_in_the_environment_names_the_setting_and_what_it_may_be(
    env: dict[str, str], name: str, value: str, words: tuple[str, ...]
) -> None:
    done = gigunion({**env, f"GIGUNION_{name}": value}, *CONSOLE)
    told(done, 2, f"GIGUNION_{name}", *words)


def test_a_missing_config_file_is_named(env: dict[str, str], tmp_path: Path) -> None:
    told(gigunion(env, "--config", str(tmp_path / "union.toml"), *CONSOLE), 2, "union.toml", "--config")


def test_a_config_file_that_is_not_toml_says_where(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "union.toml"
    config.write_text('[union]\nname = "湖滨工会\n', "utf-8")
    told(gigunion(env, "--config", str(config), *CONSOLE), 2, "union.toml", "not valid TOML", "line 2")


def test_a_bad_value_in_the_config_file_names_the_setting(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "union.toml"
    config.write_text("session_timeout_minutes = true\n", "utf-8")
    told(gigunion(env, "--config", str(config), *CONSOLE), 2, "session_timeout_minutes in", "1 to 1440")


def test_numbers_are_taken_within_their_range() -> None:
    assert load_settings(environ={"GIGUNION_SESSION_TIMEOUT_MINUTES": " 1440 "}).session_timeout_minutes == 1440
    assert load_settings(environ={"GIGUNION_SESSION_TIMEOUT_MINUTES": "1"}).session_timeout_minutes == 1
    assert load_settings(environ={"GIGUNION_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    for value in ("1441", "-1", "2.5", "30m"):
        with pytest.raises(ConfigProblem):
            load_settings(environ={"GIGUNION_SESSION_TIMEOUT_MINUTES": value})


def test_a_secret_setting_is_never_quoted_back(tmp_path: Path) -> None:
    config = tmp_path / "union.toml"
    config.write_text("[telegram]\ntoken = 123456789\n", "utf-8")
    with pytest.raises(ConfigProblem) as caught:
        load_settings(config, environ={})
    assert "telegram_token" in caught.value.message and "123456789" not in caught.value.message


# -- the database and its folder: exit code 3 -------------------------------------------------------
def test_a_file_of_random_bytes_named_as_the_database(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "gigunion.db").write_bytes(os.urandom(16384))
    told(gigunion(env, *CONSOLE), 3, str(tmp_path / "gigunion.db"), "backup")


def test_a_read_only_database(env: dict[str, str], tmp_path: Path) -> None:
    made = gigunion(env, "staff", "add", "console:ann", "--role", "admin", "--name", "Ann")
    assert made.returncode == 0, made.stderr
    for path in tmp_path.glob("gigunion.db*"):
        path.chmod(0o444)
    done = gigunion(env, "staff", "add", "console:bob", "--role", "admin", "--name", "Bob", ordinary_user=True)
    told(done, 3, "read-only", str(tmp_path / "gigunion.db"))


def test_a_folder_the_bot_may_not_write(env: dict[str, str], tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    inside = {**env, "GIGUNION_HOME": str(locked), "GIGUNION_DATABASE_URL": f"sqlite+aiosqlite:///{locked}/g.db"}
    told(gigunion(inside, *CONSOLE, ordinary_user=True), 3, str(locked))
    below = {
        **inside,
        "GIGUNION_HOME": str(locked / "sub"),
        "GIGUNION_DATABASE_URL": f"sqlite+aiosqlite:///{locked}/sub/g.db",
    }
    told(gigunion(below, *CONSOLE, ordinary_user=True), 3, str(locked))


def test_an_unreadable_key_file(env: dict[str, str], tmp_path: Path) -> None:
    made = gigunion(env, "staff", "add", "console:ann", "--role", "admin", "--name", "Ann")
    assert made.returncode == 0, made.stderr
    [key] = tmp_path.glob("*.key")
    key.chmod(0)
    told(gigunion(env, "staff", "list", ordinary_user=True), 3, str(key))
