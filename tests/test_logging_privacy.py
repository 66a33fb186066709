"""At DEBUG level the logs still carry no name and no phone number: the database libraries log SQL
parameters below WARNING, so `bot.logging_setup` holds them there unless the unsafe switch is set."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.logging_setup import SQL_LOGGERS, UNSAFE_SQL_LOG, quiet_sql_loggers
from storage.schema import members
from tests.chat import Chat, join

PHONE, NAME, DISPLAY = "13912345678", "王芳", "Wang Fang"
SECRETS = (PHONE, "139 1234 5678", NAME, DISPLAY)


@pytest.fixture
def restore_sql_loggers() -> Iterator[None]:
    before = {name: logging.getLogger(name).level for name in SQL_LOGGERS}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


async def through_aiosqlite(app) -> None:  # type: ignore[no-untyped-def]
    """A statement `storage.sqlite_direct` does not prepare (IN, Python-side defaults) goes through
    aiosqlite, which logs it with its parameters at DEBUG: here a look-up by name and by phone hash."""
    phone_hash = app.keyring.lookup_hash(PHONE)
    async with app.db.transaction() as tx:
        found = await tx.conn.execute(
            select(members.c.id).where(members.c.name.in_([NAME]), members.c.phone_hash.in_([phone_hash]))
        )
        assert len(found.all()) == 1


def logged(records: list[logging.LogRecord]) -> str:
    return "\n".join(f"{r.name} {r.getMessage()}" for r in records)


async def a_join_at_debug(dispatcher, app, caplog, monkeypatch, **env: str) -> str:  # type: ignore[no-untyped-def]
    """`gigunion`'s own logging set-up at DEBUG, then a whole join, my data and a look-up."""
    from bot.cli.common import configure

    for name, value in {"GIGUNION_LOG_LEVEL": "DEBUG", **env}.items():
        monkeypatch.setenv(name, value)
    configure(None)
    caplog.set_level(logging.DEBUG)
    chat = Chat(dispatcher, display_name=DISPLAY)
    await join(chat, phone=PHONE, name=NAME)
    await chat.say("我的信息")
    await through_aiosqlite(app)
    return logged(caplog.records)


async def test_a_debug_level_join_logs_no_name_or_phone(bot, caplog, monkeypatch, restore_sql_loggers) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    text = await a_join_at_debug(dispatcher, app, caplog, monkeypatch)
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    for secret in (*SECRETS, app.keyring.lookup_hash(PHONE)):
        assert secret not in text


async def test_the_unsafe_switch_lets_sql_parameters_through(bot, caplog, monkeypatch, restore_sql_loggers) -> None:  # type: ignore[no-untyped-def]
    """So the check above can fail: with GIGUNION_UNSAFE_SQL_LOG=1 the name is in the log."""
    app, dispatcher = bot
    text = await a_join_at_debug(dispatcher, app, caplog, monkeypatch, **{UNSAFE_SQL_LOG: "1"})
    assert NAME in text


def test_the_sql_loggers_stay_at_warning_unless_unsafe(restore_sql_loggers) -> None:  # type: ignore[no-untyped-def]
    quiet_sql_loggers({UNSAFE_SQL_LOG: "0"})
    for name in (*SQL_LOGGERS, "sqlalchemy.engine.Engine", "sqlalchemy.pool.impl.QueuePool"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
    quiet_sql_loggers({UNSAFE_SQL_LOG: "1"})
    assert logging.getLogger("aiosqlite").level == logging.NOTSET


def test_gigunion_console_at_debug_logs_no_name_or_phone(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGUNION_") and k not in ("COLUMNS", "LINES")} | {
        "GIGUNION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gigunion.db'}",
        "GIGUNION_HOME": str(tmp_path),
        "GIGUNION_LOG_LEVEL": "DEBUG",
    }
    script = f"/start\n同意\n{PHONE}\n{NAME}\n1\n1\n1\n我的信息\n"
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--user", "wang"],
        input=script,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert NAME in done.stdout and "139****5678" in done.stdout  # the join happened
    assert " DEBUG " in done.stderr  # and DEBUG logging was on
    for secret in SECRETS:
        assert secret not in done.stderr
