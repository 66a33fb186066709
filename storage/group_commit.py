"""Turns on SQLite: each as if it ran alone, several committed together.

The rules every flow relies on (DESIGN.md, "Turns and storage"):

1. A turn behaves as if it ran alone. Whatever it reads, awaits and writes, the outcome is that of
   running the turns one at a time, in the order they took the connection. Here that is literal: the
   turns on the connection run one after another, each inside a SAVEPOINT of the open transaction;
   other processes are kept out by the transaction itself (BEGIN IMMEDIATE holds SQLite's one write
   lock). So a flow may read a value, await, and write it back changed.
2. Invariants that matter are ALSO held by the database, so they survive other processes, PostgreSQL
   (where turns run side by side) and a mistake in a flow: a unique constraint, or one conditional
   statement whose empty RETURNING means "someone else moved it first", e.g.

       UPDATE slots SET booked = booked + 1 WHERE id = :id AND booked < capacity RETURNING booked
       UPDATE claims SET state = :to, version = version + 1 WHERE id = :id AND state = :from RETURNING id

3. No network or file I/O inside a turn: a turn may be run again (below), and while it runs no other
   turn can. Send through the outbox, fetch media before the turn, and do slow work in a job.

Running turns one at a time costs little: a statement takes microseconds here, because it runs on
the event loop's thread (`storage.sqlite_direct`) inside a transaction that already holds the write
lock. What costs is the commit, and that is shared: a turn that finishes leaves the transaction open
for the turns already waiting, and a commit queued behind them ends it (group commit). A turn's
answer is released only once the transaction it ran in is committed.

A failing turn is rolled back to its savepoint; the other turns of its transaction are kept. A failing
COMMIT loses the whole transaction: each of its turns is run again, alone, in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.sqlite_direct import prepared_for, run, run_sql

R = TypeVar("R")

# Marks the connection whose transactions this module begins and ends (SQLAlchemy must not begin one).
OWN_TRANSACTIONS = "gigunion_own_transactions"
BUSY_TIMEOUT_MS = 30_000  # how long anything on the database waits for another process's write lock
CHECKPOINT_EVERY = 1.0  # seconds between checkpoints while there are commits to copy back


class SharedConnection:
    """The connection as the work of one transaction sees it."""

    def __init__(self, conn: AsyncConnection, raw: sqlite3.Connection) -> None:
        self._conn = conn
        self._raw = raw
        self.dialect = conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        first = parameters[0] if isinstance(parameters, list) else parameters
        prepared = prepared_for(statement, self.dialect, tuple(first or ()))
        if prepared is not None:
            return run(self._raw, prepared, parameters)
        # SQLAlchemy runs it in aiosqlite's thread, in our transaction: nothing else uses the connection
        # meanwhile, since the work awaiting this holds it.
        return await self._conn.execute(statement, parameters)


class _Transaction:
    def __init__(self, shared: SharedConnection, unit: Any) -> None:
        self.shared = shared
        self.unit = unit  # every repository on `shared`: they hold nothing else, so its turns share them
        self.turns = 0
        self.commit_queued = False
        self.committed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.error: BaseException | None = None  # why the COMMIT failed


class GroupCommit:
    def __init__(
        self,
        engine: AsyncEngine,
        wrap: Callable[[Any], Any],
        *,
        path: str,
        batching: bool = True,
        max_batch: int = 64,
    ) -> None:
        self.engine = engine
        self.wrap = wrap  # makes the unit of work (every repository) from a connection
        self.path = path
        self.batching = batching  # False: every turn is committed on its own
        self.max_batch = max_batch
        self.busy_seconds = BUSY_TIMEOUT_MS / 1000
        self.checkpoint_seconds = CHECKPOINT_EVERY
        # One turn, or one piece of other work, at a time on the one connection; FIFO, so a queued
        # commit ends the transaction after the turns that were waiting before it and no others.
        self._lock = asyncio.Lock()
        self._tx: _Transaction | None = None
        # The one connection, kept for good (checking it out of a pool and back costs a trip each).
        self._conn: AsyncConnection | None = None
        self._raw: sqlite3.Connection | None = None
        self._commits = 0  # since the last checkpoint
        self._checkpoints: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def run(self, fn: Callable[[Any], Awaitable[R]]) -> R:
        tx, outcome = await self._turn(fn, alone=not self.batching)
        if await asyncio.shield(tx.committed):
            return outcome
        tx, outcome = await self._turn(fn, alone=True)  # its transaction was lost: alone, this time
        if await asyncio.shield(tx.committed):
            return outcome
        assert tx.error is not None
        raise tx.error

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[SharedConnection]:
        """A transaction for work other than turns (the CLI, the outbox, jobs), committed at its end."""
        async with self._lock:
            tx = await self._open()
            run_sql(self._raw, "SAVEPOINT work")  # type: ignore[arg-type]
            try:
                yield tx.shared
            except BaseException:
                self._undo("work", tx)
                raise
            else:
                run_sql(self._raw, "RELEASE work")  # type: ignore[arg-type]
            finally:
                if self._tx is tx:
                    await self._commit(tx)
        if not tx.committed.result():
            assert tx.error is not None
            raise tx.error

    async def close(self) -> None:
        async with self._lock:
            if self._tx is not None:
                await self._commit(self._tx)
            if self._checkpoints is not None:
                self._checkpoints.cancel()
                with contextlib.suppress(BaseException):
                    await self._checkpoints
                self._checkpoints = None
            if self._conn is not None:
                # Back in the pool, the connection is SQLAlchemy's to begin transactions on again.
                self._raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # type: ignore[union-attr]
                self._raw.execute("PRAGMA wal_autocheckpoint = 1000")  # type: ignore[union-attr]
                self._conn.info.pop(OWN_TRANSACTIONS, None)
                await self._conn.close()
                self._conn = self._raw = None

    # -- one turn ----------------------------------------------------------------------------------
    async def _turn(self, fn: Callable[[Any], Awaitable[R]], *, alone: bool) -> tuple[_Transaction, R]:
        async with self._lock:
            tx = await self._open()
            run_sql(self._raw, "SAVEPOINT turn")  # type: ignore[arg-type]
            try:
                outcome = await fn(tx.unit)
            except BaseException:
                self._undo("turn", tx)
                if self._tx is None:  # the transaction went with it: settle the turns that ran in it
                    await self._commit(tx)
                raise
            run_sql(self._raw, "RELEASE turn")  # type: ignore[arg-type]
            tx.turns += 1
            if alone or tx.turns >= self.max_batch:
                await self._commit(tx)
            elif not tx.commit_queued:
                tx.commit_queued = True
                self._spawn(self._commit_when_free(tx))
        return tx, outcome

    def _undo(self, savepoint: str, tx: _Transaction) -> None:
        raw = self._raw
        assert raw is not None
        if raw.in_transaction:
            raw.execute(f"ROLLBACK TO {savepoint}")
            raw.execute(f"RELEASE {savepoint}")
        else:  # SQLite ended the whole transaction on that error (disk full, I/O error…)
            tx.error = DBAPIError.instance("ROLLBACK", (), sqlite3.OperationalError("transaction lost"), sqlite3.Error)
            self._tx = None

    async def _commit_when_free(self, tx: _Transaction) -> None:
        async with self._lock:
            if self._tx is tx:
                await self._commit(tx)

    # -- the transaction ---------------------------------------------------------------------------
    async def _open(self) -> _Transaction:
        if self._tx is None:
            conn, raw = await self._connection()
            await self._begin(raw)
            shared = SharedConnection(conn, raw)
            self._tx = _Transaction(shared, self.wrap(shared))
        return self._tx

    async def _begin(self, raw: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, waiting without blocking the event loop while another process writes."""
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + self.busy_seconds, 0.001
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or loop.time() >= deadline:
                    raise DBAPIError.instance("BEGIN IMMEDIATE", (), e, sqlite3.Error) from e
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def _commit(self, tx: _Transaction) -> None:
        """End `tx` (the lock is held) and settle every turn that ran in it."""
        raw = self._raw
        assert raw is not None
        self._tx = None
        committed = False
        if tx.error is None:
            try:
                run_sql(raw, "COMMIT")
                committed = True
            except DBAPIError as e:
                tx.error = e
        if not committed and raw.in_transaction:
            raw.execute("ROLLBACK")
        if tx.shared._conn.in_transaction():
            # A statement SQLAlchemy ran itself opened a transaction in its books (not in SQLite, where
            # ours was already open): close it there too, now that SQLite's has ended.
            await tx.shared._conn.rollback()
        self._commits += committed
        tx.committed.set_result(committed)

    async def _connection(self) -> tuple[AsyncConnection, sqlite3.Connection]:
        if self._conn is None or self._conn.closed or self._raw is None:
            self._conn = await self.engine.connect()
            self._conn.info[OWN_TRANSACTIONS] = True
            self._raw = (await self._conn.get_raw_connection()).driver_connection.sqlite
            # Waiting for another process is `_begin`'s, with asyncio sleeps; checkpoints (and their fsyncs)
            # are `_checkpoint_every`'s, in a thread: neither may stall the event loop here.
            self._raw.execute("PRAGMA busy_timeout = 0")
            if self.path != ":memory:":
                self._raw.execute("PRAGMA wal_autocheckpoint = 0")
                self._checkpoints = asyncio.ensure_future(self._checkpoint_every())
        return self._conn, self._raw

    async def _checkpoint_every(self) -> None:
        while True:
            await asyncio.sleep(self.checkpoint_seconds)
            if self._commits:
                self._commits = 0
                with contextlib.suppress(sqlite3.Error):  # busy now: the next one copies it all
                    await asyncio.to_thread(_checkpoint, self.path)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _checkpoint(path: str) -> None:
    # A connection of its own, opened and closed in the thread: a cancelled wait for this must never
    # leave a connection that another thread closes under it.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()
