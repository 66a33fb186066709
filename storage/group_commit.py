"""Group commit: several users' turns share one SQLite transaction, each still all-or-nothing.

SQLite has one writer. Run one turn per transaction and every turn waits for the whole of the one
before it: its Python work and its trips to the database thread, end to end. Here a turn that finds
the connection idle runs at once on its own, and the turns that arrive while it is busy wait together
and then run interleaved in one transaction, so one turn's Python work overlaps another's database
work, and BEGIN and COMMIT are paid once per batch.

Every turn saves its session and marks its update as handled; those writes wait for the end of the
batch and go in one executemany each, in the same trip as COMMIT. A turn's answer is released only
after its batch commits. If any turn of a batch fails, or the commit does, the batch is rolled back
and each of its turns runs again alone, in a transaction of its own, so the failure is that turn's
alone. Turns must therefore be re-runnable (they build everything from the database) and change rows
other users may also change only with single statements (an upsert, an INSERT … ON CONFLICT), never
read-then-write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.sqlite_direct import Pipeline, prepare

R = TypeVar("R")

# Marks the connection whose transactions the pipeline begins and ends (SQLAlchemy must not begin one).
OWN_TRANSACTIONS = "gigunion_own_transactions"


class SharedConnection:
    """The connection as a transaction's turns see it: their statements go to SQLite's thread together
    (see `storage.sqlite_direct`), and writes that every turn makes (its session, its update marker)
    wait for the transaction's end to go in one executemany for all of its turns."""

    def __init__(self, conn: AsyncConnection, pipeline: Pipeline, *, deferring: bool) -> None:
        self._conn = conn
        self._pipeline = pipeline
        self.deferring = deferring  # only turns defer: other work may read back what it wrote
        self.dialect = conn.dialect
        self._deferred: dict[str, dict[Hashable, tuple[Any, dict[str, Any]]]] = {}

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        first = parameters[0] if isinstance(parameters, list) else parameters
        prepared = prepare(statement, self.dialect, tuple(sorted(first or ())))
        if prepared is not None:
            return await self._pipeline.execute(prepared, parameters)
        return await self._pipeline.run_sqlalchemy(lambda: self._conn.execute(statement, parameters))

    def defer(self, rows: str, key: Hashable, statement: Any, parameters: dict[str, Any]) -> None:
        """Run `statement` just before the transaction commits. Of the statements deferred for the same
        `rows` and `key` (say, one user's session: saved, then deleted), only the last one runs."""
        self._deferred.setdefault(rows, {})[key] = (statement, parameters)

    def _last_writes(self) -> list[tuple[Any, Any]]:
        """The deferred statements, one executemany for each statement."""
        by_statement: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
        for pending in self._deferred.values():
            for statement, parameters in pending.values():
                by_statement.setdefault(id(statement), (statement, []))[1].append(parameters)
        self._deferred.clear()
        return list(by_statement.values())

    async def commit(self) -> None:
        last_writes = []
        for statement, many in self._last_writes():
            prepared = prepare(statement, self.dialect, tuple(sorted(many[0])))
            if prepared is None:
                await self.execute(statement, many)
            else:
                last_writes.append((prepared, many))
        await self._pipeline.commit(last_writes)
        await self._sqlalchemy_done()

    async def rollback(self) -> None:
        await self._pipeline.rollback()
        await self._sqlalchemy_done()

    async def _sqlalchemy_done(self) -> None:
        # A statement SQLAlchemy ran itself opened a transaction in its books (not in SQLite, where the
        # pipeline's transaction was already open): close it there too.
        if self._conn.in_transaction():
            await self._conn.rollback()


def deferring(conn: Any) -> bool:
    """Whether writes every turn makes may wait for the end of the transaction on `conn`."""
    return isinstance(conn, SharedConnection) and conn.deferring


class _Batch:
    def __init__(self, admitting: bool) -> None:
        self.admitting = admitting
        self.size = 0
        self.running = 0
        self.failed = False
        self.ready: asyncio.Future[SharedConnection] = asyncio.get_running_loop().create_future()
        self.committed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.shared: SharedConnection | None = None  # set once the batch's transaction has begun


class GroupCommit:
    def __init__(
        self,
        engine: AsyncEngine,
        wrap: Callable[[Any], Any],
        *,
        batching: bool = True,
        max_batch: int = 64,
        window: float = 0.002,
    ) -> None:
        self.engine = engine
        self.batching = batching  # False: every turn has a transaction of its own
        self.window = window
        self.wrap = wrap  # makes the unit of work (every repository) from a connection
        self.max_batch = max_batch
        self._open: _Batch | None = None
        # The one connection, kept for good (checking it out of a pool and back costs a trip each), and
        # the gate that a batch, or a transaction outside the turns, holds while using it.
        self._conn: AsyncConnection | None = None
        self._pipeline: Pipeline | None = None
        self._gate = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self) -> tuple[AsyncConnection, Pipeline]:
        if self._conn is None or self._conn.closed or self._pipeline is None:
            self._conn = await self.engine.connect()
            self._conn.info[OWN_TRANSACTIONS] = True
            self._pipeline = Pipeline((await self._conn.get_raw_connection()).driver_connection)
        return self._conn, self._pipeline

    @asynccontextmanager
    async def exclusive(self, *, deferring: bool = False) -> AsyncIterator[SharedConnection]:
        """A transaction of its own on the shared connection, between batches."""
        async with self._gate:
            conn, pipeline = await self._connection()
            pipeline.begin()
            shared = SharedConnection(conn, pipeline, deferring=deferring)
            try:
                yield shared
                await shared.commit()
            except BaseException:
                await shared.rollback()
                raise

    async def close(self) -> None:
        async with self._gate:
            if self._conn is not None:
                # Back in the pool, the connection is SQLAlchemy's to begin transactions on again.
                self._conn.info.pop(OWN_TRANSACTIONS, None)
                await self._conn.close()
                self._conn = self._pipeline = None

    async def run(self, fn: Callable[[Any], Awaitable[R]]) -> R:
        if not self.batching or (self._open is None and not self._gate.locked()):
            # Nobody is using the connection: no one to share a commit with, so no one to wait for.
            return await self._alone(fn)
        batch = self._join()
        outcome: Any
        ok = True
        try:
            conn = await asyncio.shield(batch.ready)
            outcome = await fn(self.wrap(conn))
        except BaseException as e:
            batch.failed, ok, outcome = True, False, e
        finally:
            batch.running -= 1
            if batch.running == 0:
                self._close_admission(batch)
                self._spawn(self._finish(batch))
        if await asyncio.shield(batch.committed):
            return outcome
        if not ok and not isinstance(outcome, Exception):
            raise outcome  # cancelled, or the process is exiting: not to be run again
        return await self._alone(fn)

    def _join(self) -> _Batch:
        batch = self._open
        if batch is None or not batch.admitting:
            batch = self._open = _Batch(admitting=True)
            self._spawn(self._start(batch))
        batch.size += 1
        batch.running += 1
        if batch.size >= self.max_batch:
            self._close_admission(batch)
        return batch

    def _close_admission(self, batch: _Batch) -> None:
        batch.admitting = False
        if self._open is batch:
            self._open = None

    async def _start(self, batch: _Batch) -> None:
        await self._gate.acquire()
        try:
            conn, pipeline = await self._connection()
            pipeline.begin()
            # The batch is those who queued while the one before it held the connection, and those who
            # come in its first moments. Later turns wait for the next batch: a batch that kept
            # admitting would keep its first turns waiting.
            asyncio.get_running_loop().call_later(self.window, self._close_admission, batch)
            batch.shared = SharedConnection(conn, pipeline, deferring=True)
            batch.ready.set_result(batch.shared)
        except Exception as e:
            batch.ready.set_exception(e)

    async def _finish(self, batch: _Batch) -> None:
        committed = False
        # `_start` holds the gate by the time `ready` is settled, even when its turns were cancelled.
        with contextlib.suppress(BaseException):
            await asyncio.shield(batch.ready)
        try:
            if batch.shared is not None and not batch.failed:
                with contextlib.suppress(Exception):
                    await batch.shared.commit()
                    committed = True
            if not committed and batch.shared is not None:  # (with no `shared`, BEGIN itself failed)
                await batch.shared.rollback()
        finally:
            self._gate.release()
            batch.committed.set_result(committed)

    async def _alone(self, fn: Callable[[Any], Awaitable[R]]) -> R:
        async with self.exclusive(deferring=True) as conn:
            return await fn(self.wrap(conn))
