"""Turns behave as if they ran one at a time, on SQLite (group commit) and on PostgreSQL alike.

Each turn here does what a careless flow would: read, await, then write what it read changed. The
outcome must still equal some one-at-a-time order of the turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, select, update

from storage import Database, migrate
from storage.schema import audit_log, counters
from tests.test_postgres import postgres_database

NOW = datetime(2026, 11, 29, tzinfo=UTC)
TURNS = 200

_READ = select(counters.c.value).where(counters.c.name == bindparam("counter"))
_WRITE = update(counters).where(counters.c.name == bindparam("counter")).values(value=bindparam("new"))
_PLACES_TAKEN = select(func.count()).select_from(audit_log).where(audit_log.c.action == "booked")


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request, tmp_path: Path) -> AsyncIterator[Database]:  # type: ignore[no-untyped-def]
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        database = Database(url)
        await migrate.upgrade(database)
        async with database.transaction() as tx:
            await tx.members.next_counter("c")  # the counter starts at 1
        yield database
        await database.close()


async def read_await_write(tx) -> None:  # type: ignore[no-untyped-def]
    value = (await tx.conn.execute(_READ, {"counter": "c"})).scalar_one()
    await asyncio.sleep(0)  # another turn could run here
    await tx.conn.execute(_WRITE, {"counter": "c", "new": value + 1})


async def counter(db: Database) -> int:
    async with db.transaction() as tx:
        return await tx.members.counter("c")


async def test_read_await_write_turns_on_one_counter_all_count(db: Database) -> None:
    await asyncio.gather(*(db.run_turn(read_await_write) for _ in range(TURNS)))
    assert await counter(db) == 1 + TURNS


async def test_turns_racing_for_one_place_give_one_winner(db: Database) -> None:
    async def book(tx) -> bool:  # type: ignore[no-untyped-def]
        taken = (await tx.conn.execute(_PLACES_TAKEN)).scalar_one()
        await asyncio.sleep(0)
        if taken >= 1:
            return False
        await tx.audit.record(NOW, "rider", "booked")
        return True

    won = await asyncio.gather(*(db.run_turn(book) for _ in range(TURNS)))
    assert won.count(True) == 1
    async with db.transaction() as tx:
        assert (await tx.conn.execute(_PLACES_TAKEN)).scalar_one() == 1


async def test_a_failing_turn_leaves_the_others_committed(db: Database) -> None:
    async def turn(tx, n: int) -> int:  # type: ignore[no-untyped-def]
        await tx.audit.record(NOW, "rider", f"t{n}")
        await read_await_write(tx)
        if n % 10 == 3:
            raise ValueError("this turn fails")
        return n

    results = await asyncio.gather(
        *(db.run_turn(lambda tx, n=n: turn(tx, n)) for n in range(50)), return_exceptions=True
    )
    failed = {n for n, r in enumerate(results) if isinstance(r, ValueError)}
    assert failed == {n for n in range(50) if n % 10 == 3}
    async with db.transaction() as tx:
        kept = {e.action for e in await tx.audit.entries(1000)}
    assert kept == {f"t{n}" for n in range(50) if n not in failed}  # the failing turns' writes are gone
    assert await counter(db) == 1 + 50 - len(failed)


async def test_a_cancelled_turn_is_not_run_again_and_leaves_nothing(db: Database) -> None:
    started = asyncio.Event()
    runs = 0

    async def slow(tx) -> None:  # type: ignore[no-untyped-def]
        nonlocal runs
        runs += 1
        await tx.audit.record(NOW, "test", "slow")
        started.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(db.run_turn(slow))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await db.run_turn(read_await_write)  # the connection is usable again
    async with db.transaction() as tx:
        assert [e.action for e in await tx.audit.entries(10)] == []
    assert runs == 1 and await counter(db) == 2


ROOT = str(Path(__file__).resolve().parents[1])


async def test_two_processes_on_one_sqlite_file_count_every_turn(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    await migrate.upgrade(database)
    async with database.transaction() as tx:
        await tx.members.next_counter("c")
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {ROOT!r})
        from storage import Database
        from tests.test_serializable import read_await_write

        async def main():
            db = Database({f"sqlite+aiosqlite:///{path}"!r})
            await asyncio.gather(*(db.run_turn(read_await_write) for _ in range(100)))
            await db.close()

        asyncio.run(main())
        """
    )
    others = [await asyncio.create_subprocess_exec(sys.executable, "-c", script) for _ in range(2)]
    await asyncio.gather(*(database.run_turn(read_await_write) for _ in range(100)))
    assert [await asyncio.wait_for(p.wait(), 60) for p in others] == [0, 0]
    assert await counter(database) == 1 + 300
    await database.close()
