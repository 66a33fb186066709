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


async def test_turns_arriving_together_share_a_commit(db: Database) -> None:
    commits = 0
    original = db._group._commit  # type: ignore[union-attr]

    async def counting(tx) -> None:  # type: ignore[no-untyped-def]
        nonlocal commits
        commits += 1
        await original(tx)

    db._group._commit = counting  # type: ignore[union-attr,method-assign]

    async def fn(tx) -> None:  # type: ignore[no-untyped-def]
        await tx.audit.record(NOW, "test", "x")

    await asyncio.gather(*(db.run_turn(fn) for _ in range(30)))
    assert len(await actions(db)) == 30 and commits < 30


async def test_a_commit_that_fails_runs_each_turn_again_alone(db: Database) -> None:
    from sqlalchemy import insert, text

    from storage.schema import identities

    orphan = insert(identities).values(user_key="x:1", member_id=999, channel="x", linked_at=NOW, unreachable=False)
    runs: dict[str, int] = {}

    def turn(name: str, bad: bool = False):  # type: ignore[no-untyped-def]
        async def fn(tx) -> str:  # type: ignore[no-untyped-def]
            runs[name] = runs.get(name, 0) + 1
            await tx.audit.record(NOW, "test", name)
            if bad:  # no member 999: checked only at COMMIT, which fails for the whole transaction
                await tx.conn.execute(text("PRAGMA defer_foreign_keys = ON"))
                await tx.conn.execute(orphan)
            return name

        return fn

    results = await asyncio.gather(
        *(db.run_turn(turn(f"t{i}")) for i in range(8)), db.run_turn(turn("bad", bad=True)), return_exceptions=True
    )
    assert sum(isinstance(r, Exception) for r in results) == 1
    assert await actions(db) == sorted(f"t{i}" for i in range(8))
    assert runs["bad"] == 2 and all(runs[f"t{i}"] in (1, 2) for i in range(8))


async def test_an_insert_tells_its_primary_key_or_says_clearly_why_not(db: Database) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import InvalidRequestError

    from storage.schema import audit_log, counters

    async def fn(tx) -> tuple:  # type: ignore[no-untyped-def]
        first = await tx.conn.execute(insert(audit_log), {"at": NOW, "actor": "a", "action": "x", "subject": None})
        second = await tx.conn.execute(insert(audit_log), {"at": NOW, "actor": "a", "action": "y", "subject": None})
        named = await tx.conn.execute(insert(counters), {"name": "n", "value": 1})
        many = await tx.conn.execute(insert(counters), [{"name": "a", "value": 1}, {"name": "b", "value": 2}])
        with pytest.raises(InvalidRequestError, match="executemany"):
            _ = many.inserted_primary_key
        return first.inserted_primary_key, second.inserted_primary_key, named.inserted_primary_key

    first, second, named = await db.run_turn(fn)
    assert second[0] == first[0] + 1 and second.id == second[0] and named == ("n",)


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


async def test_waiting_for_another_process_never_stalls_the_event_loop(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from sqlalchemy.exc import OperationalError

    other_process = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")  # holds the write lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    db._group.busy_seconds = 0.3  # type: ignore[union-attr]
    with pytest.raises(OperationalError, match="locked"):
        await db.run_turn(turn_noop)  # gives up after busy_seconds, having run nothing
    waiting = asyncio.create_task(db.run_turn(turn_noop))
    await asyncio.sleep(0.1)
    other_process.execute("ROLLBACK")
    await waiting  # begins once the other process lets go
    ticking.cancel()
    other_process.close()
    assert ticks > 30 and await actions(db) == ["noop"]


async def test_a_close_while_a_checkpoint_runs_in_its_thread_is_safe(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    from storage import group_commit

    path, real, finished = tmp_path / "c.db", group_commit._checkpoint, []

    def slow_checkpoint(where: str) -> None:
        time.sleep(0.1)  # still copying when the database is closed (this once crashed the process)
        real(where)
        finished.append(where)

    monkeypatch.setattr(group_commit, "_checkpoint", slow_checkpoint)
    database = Database(f"sqlite+aiosqlite:///{path}")
    await migrate.upgrade(database)
    database._group.checkpoint_seconds = 0.01  # type: ignore[union-attr]
    await database.run_turn(turn_noop)
    await asyncio.sleep(0.05)  # the checkpoint has started
    await database.close()
    await asyncio.sleep(0.15)
    assert finished == [str(path)]
    database = Database(f"sqlite+aiosqlite:///{path}")
    assert await actions(database) == ["noop"]
    await database.close()
