"""A database that cannot be written, in the chat: the rider is told the service has a fault (not "try
again" forever), the log names the kind of fault and nothing the rider sent, and the conversation
carries on where it was once the database is mended. `storage.faults.classify` on the drivers' real
errors."""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.config import Settings
from bot.runtime import running_bot
from storage import Database
from storage.faults import CORRUPT, DISK_FULL, LOCKED, READ_ONLY, Fault, classify
from tests.chat import Chat
from tests.test_join import session_of, walk_to
from tests.test_postgres import SERVER, postgres_database

PHONE, NAME = "13800138000", "张三"
KEY = secrets.token_urlsafe(32)


async def fault_mid_session(
    app, dispatcher, caplog, break_it: Callable[[], Awaitable[None]], mend_it: Callable[[], Awaitable[None]], code: str
) -> None:  # type: ignore[no-untyped-def]
    chat = Chat(dispatcher)
    await walk_to(chat, "name")
    await break_it()
    caplog.clear()
    caplog.set_level(logging.INFO)
    fault = app.locale.text("zh_CN", "engine.fault")
    for _ in range(2):  # the same plain answer each time, not an invitation to try again at once
        out = await chat.say(NAME)
        assert out.text == fault and "故障" in out.text and not out.buttons
    failures = [r.getMessage() for r in caplog.records if "turn failed" in r.getMessage()]
    assert len(failures) == 2 and all(f"database {READ_ONLY} ({code}" in m for m in failures), failures
    assert PHONE not in caplog.text and PHONE[-4:] not in caplog.text and NAME not in caplog.text
    await mend_it()
    asked = await chat.say(NAME)  # the step the rider was at, with what they had given before
    assert "平台" in asked.text, asked.text
    assert (await session_of(app, "console:alice")).step == "platform"


async def test_a_database_turned_read_only_mid_session_is_a_fault_the_rider_is_told_of(bot, caplog) -> None:  # type: ignore[no-untyped-def]
    app, dispatcher = bot
    raw: list[sqlite3.Connection] = []

    async def read_only() -> None:
        async with app.db.transaction():  # ends the open batch, so the switch applies to the next turn
            pass
        raw.append(app.db._group._raw)
        raw[0].execute("PRAGMA query_only = ON")  # writes now fail as on a read-only file: SQLITE_READONLY

    async def writable() -> None:
        raw[0].execute("PRAGMA query_only = OFF")

    await fault_mid_session(app, dispatcher, caplog, read_only, writable, "SQLITE_READONLY")


async def test_a_postgresql_database_turned_read_only_mid_session_is_a_fault_the_rider_is_told_of(caplog) -> None:  # type: ignore[no-untyped-def]
    async with postgres_database() as url:
        name = url.rsplit("/", 1)[1]

        async def set_read_only(on: bool) -> None:
            admin = await asyncpg.connect(SERVER, timeout=5)
            try:
                value = "on" if on else "off"
                await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}')
            finally:
                await admin.close()
            await app.db.engine.dispose()  # new connections take the database's new default

        async with running_bot(Settings(database_url=url, secret_key=KEY)) as (app, dispatcher):
            await fault_mid_session(
                app, dispatcher, caplog, lambda: set_read_only(True), lambda: set_read_only(False), "25006"
            )


# -- the kinds, from the drivers' own errors ---------------------------------------------------------
def sqlite_error(work: Callable[[], object]) -> BaseException:
    with pytest.raises(sqlite3.Error) as caught:
        work()
    return caught.value


def test_sqlite_errors_classify_by_their_code_not_their_message(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (x)")

    conn.execute("PRAGMA query_only = ON")
    read_only = sqlite_error(lambda: conn.execute("INSERT INTO t VALUES ('13800138000')"))
    conn.execute("PRAGMA query_only = OFF")

    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    full = sqlite_error(lambda: conn.execute("INSERT INTO t VALUES (randomblob(100000))"))

    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.execute("BEGIN EXCLUSIVE")
    busy = sqlite_error(lambda: other.execute("SELECT * FROM t"))
    conn.execute("ROLLBACK")

    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    corrupt = sqlite_error(lambda: sqlite3.connect(junk).execute("SELECT * FROM sqlite_master"))

    bug = sqlite_error(lambda: conn.execute("SELECT * FROM no_such_table"))

    assert classify(read_only) == Fault(READ_ONLY, "SQLITE_READONLY")
    assert classify(full) == Fault(DISK_FULL, "SQLITE_FULL")
    assert classify(busy) == Fault(LOCKED, "SQLITE_BUSY")
    assert classify(corrupt) == Fault(CORRUPT, "SQLITE_NOTADB")
    assert classify(bug) is None  # a mistake in the code is not a fault of the database
    # As SQLAlchemy raises it, and as the cause of another error.
    wrapped = DBAPIError.instance("INSERT", (), read_only, sqlite3.Error)
    assert classify(wrapped) == Fault(READ_ONLY, "SQLITE_READONLY")
    try:
        raise RuntimeError("saving failed") from wrapped
    except RuntimeError as e:
        assert classify(e) == Fault(READ_ONLY, "SQLITE_READONLY")
    assert classify(ValueError("13800138000")) is None


async def test_postgresql_errors_classify_by_their_sqlstate() -> None:
    async with postgres_database() as url:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                await conn.execute(text("CREATE TABLE t (x text)"))
                await conn.commit()
                await conn.execute(text("SET TRANSACTION READ ONLY"))
                with pytest.raises(DBAPIError) as caught:
                    await conn.execute(text("INSERT INTO t VALUES ('13800138000')"))
                await conn.rollback()
                with pytest.raises(DBAPIError) as bug:
                    await conn.execute(text("SELECT * FROM no_such_table"))
        finally:
            await db.close()
    assert classify(caught.value) == Fault(READ_ONLY, "25006")
    assert classify(bug.value) is None
