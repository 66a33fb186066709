"""Group commit keeps each turn all-or-nothing even when turns share a transaction."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from storage import Database, migrate

NOW = datetime(2026, 11, 29, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path):  # type: ignore[no-untyped-def]
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    await migrate.upgrade(database)
    yield database
    await database.close()


async def actions(db: Database) -> list[str]:
    async with db.transaction() as tx:
        return sorted(e.action for e in await tx.audit.entries(1000))


async def test_one_failing_turn_takes_nothing_of_the_others_with_it(db: Database) -> None:
    runs: dict[str, int] = {}

    def turn(name: str, fail: bool = False):  # type: ignore[no-untyped-def]
        async def fn(tx) -> str:  # type: ignore[no-untyped-def]
            runs[name] = runs.get(name, 0) + 1
            await tx.audit.record(NOW, "test", name)
            await asyncio.sleep(0)  # let the other turns interleave in the batch
            await tx.members.next_counter("shared")
            if fail:
                raise ValueError("this turn fails")
            return name

        return fn

    names = [f"t{i}" for i in range(20)]
    results = await asyncio.gather(
        *(db.run_turn(turn(n)) for n in names[:10]),
        db.run_turn(turn("bad", fail=True)),
        *(db.run_turn(turn(n)) for n in names[10:]),
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, ValueError)] and set(names) <= set(results)
    assert await actions(db) == sorted(names)  # the failing turn's write is gone, every other one is kept
    async with db.transaction() as tx:
        assert await tx.members.counter("shared") == 20  # each good turn counted once, though some ran twice
    assert runs["bad"] == 2 and all(runs[n] in (1, 2) for n in names)


async def test_turns_arriving_together_share_a_commit(db: Database) -> None:
    commits = 0
    original = db._group._finish  # type: ignore[union-attr]

    async def counting(batch) -> None:  # type: ignore[no-untyped-def]
        nonlocal commits
        commits += 1
        await original(batch)

    db._group._finish = counting  # type: ignore[union-attr,method-assign]

    async def fn(tx) -> None:  # type: ignore[no-untyped-def]
        await tx.audit.record(NOW, "test", "x")

    await asyncio.gather(*(db.run_turn(fn) for _ in range(30)))
    assert len(await actions(db)) == 30 and commits < 30


async def test_a_cancelled_turn_is_not_run_again(db: Database) -> None:
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
    assert runs == 1 and await actions(db) == []


async def test_writes_deferred_to_the_batch_end_keep_the_order_they_were_made_in(db: Database) -> None:
    from storage.sessions import Session

    order = asyncio.Event()

    async def save(tx) -> None:  # type: ignore[no-untyped-def]
        await tx.sessions.save(Session("telegram:1", flow="menu", step="main"))
        order.set()

    async def delete_after_save(tx) -> None:  # type: ignore[no-untyped-def]
        await order.wait()
        await tx.sessions.delete("telegram:1")

    await asyncio.gather(db.run_turn(save), db.run_turn(delete_after_save))
    async with db.transaction() as tx:
        assert await tx.sessions.get("telegram:1") is None  # the delete came last
    await db.run_turn(save)
    async with db.transaction() as tx:
        saved = await tx.sessions.get("telegram:1")
    assert saved is not None and saved.step == "main"


async def test_a_last_write_that_fails_commits_nothing_of_its_batch(db: Database) -> None:
    from sqlalchemy import insert

    from storage.schema import identities

    orphan = insert(identities).values(user_key="x:1", member_id=999, channel="x", linked_at=NOW, unreachable=False)

    def turn(name: str, bad: bool = False):  # type: ignore[no-untyped-def]
        async def fn(tx) -> str:  # type: ignore[no-untyped-def]
            await tx.audit.record(NOW, "test", name)
            if bad:  # written at the end of the transaction, with the COMMIT: no member 999, so it fails
                tx.conn.defer("identities", name, orphan, {})
            return name

        return fn

    results = await asyncio.gather(
        *(db.run_turn(turn(f"t{i}")) for i in range(8)), db.run_turn(turn("bad", bad=True)), return_exceptions=True
    )
    assert sum(isinstance(r, Exception) for r in results) == 1
    assert await actions(db) == sorted(f"t{i}" for i in range(8))


async def test_statements_sqlalchemy_runs_itself_share_the_transaction(db: Database) -> None:
    from sqlalchemy import insert, select

    from storage.schema import sessions

    async def fn(tx) -> None:  # type: ignore[no-untyped-def]
        # `data`, `choices` and `version` left out: SQLAlchemy fills in their defaults as it executes.
        await tx.conn.execute(insert(sessions).values(user_key="x:1", flow="menu"))
        await tx.audit.record(NOW, "test", "with-defaults")

    await asyncio.gather(*(db.run_turn(fn) if i == 0 else db.run_turn(turn_noop) for i in range(5)))
    async with db.transaction() as tx:
        row = (await tx.conn.execute(select(sessions).where(sessions.c.user_key == "x:1"))).one()
    assert (row.data, row.choices, row.version) == ("{}", "[]", 0) and "with-defaults" in await actions(db)
    with pytest.raises(ValueError):
        async with db.transaction() as tx:
            await tx.conn.execute(insert(sessions).values(user_key="x:2"))
            raise ValueError("rolled back")
    async with db.transaction() as tx:
        assert (await tx.conn.execute(select(sessions).where(sessions.c.user_key == "x:2"))).first() is None


async def turn_noop(tx) -> None:  # type: ignore[no-untyped-def]
    await tx.audit.record(NOW, "test", "noop")


async def test_a_transaction_that_could_not_begin_runs_nothing_outside_one(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    async with db.transaction() as tx:
        await tx.conn.execute(text("PRAGMA busy_timeout = 50"))
    other_process = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")  # holds the write lock: our BEGIN IMMEDIATE times out
    async with db.transaction() as tx:
        with pytest.raises(OperationalError):
            await tx.audit.record(NOW, "test", "while-locked")
        other_process.execute("ROLLBACK")
        # The same transaction goes on: it begins now, so this write is committed with it, not on its own.
        await tx.audit.record(NOW, "test", "after")
    other_process.close()
    assert await actions(db) == ["after"]
