"""SQLAlchemy statements run on SQLite's driver directly, several to a trip to its thread.

Measured on this project's turn statements (2-core machine): SQLAlchemy's execution layer costs about
150 µs of CPU a statement and each trip to aiosqlite's thread about 130 µs more, while SQLite itself
needs under 10 µs. A turn runs about two statements, so those costs, not SQLite, set the pace. Here a
statement is compiled by SQLAlchemy once, its parameters and results go through the column types' own
processors, and statements that arrive while a trip is under way go together in the next one. Each
statement keeps its own outcome: one that fails raises SQLAlchemy's error to its caller alone.

Statements whose values SQLAlchemy computes while executing (Python-side column defaults, expanding
IN lists) are not prepared here; the caller runs those through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect, IteratorResult
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.exc import DBAPIError

from storage.sqlite_driver import OneTripConnection

Processor = Callable[[Any], Any] | None
R = TypeVar("R")


@dataclass(frozen=True)
class Prepared:
    sql: str
    names: tuple[str, ...]  # the positional parameters, in order
    binds: tuple[Processor, ...]
    fixed: dict[str, Any]  # values the statement itself holds (literals, bindparam(value=...))
    keys: tuple[str, ...]  # the result columns
    results: tuple[Processor, ...]
    metadata: SimpleResultMetaData | None

    def arguments(self, parameters: dict[str, Any] | None) -> tuple[Any, ...]:
        values = {**self.fixed, **parameters} if parameters else self.fixed
        return tuple(values[n] if p is None else p(values[n]) for n, p in zip(self.names, self.binds, strict=True))

    def result(self, description: Any, rows: list[Any], rowcount: int) -> IteratorResult:
        metadata = self.metadata or SimpleResultMetaData([d[0] for d in description or ()])
        if any(self.results):
            rows = [tuple(v if p is None else p(v) for v, p in zip(row, self.results, strict=True)) for row in rows]
        result = IteratorResult(metadata, iter(rows))
        result.rowcount = rowcount  # type: ignore[attr-defined]
        return result


@lru_cache(maxsize=256)  # keeps the statements it has seen alive, so their identity stays theirs
def prepare(statement: Any, dialect: Dialect, column_keys: tuple[str, ...]) -> Prepared | None:
    compiled = statement.compile(dialect=dialect, column_keys=list(column_keys))
    if (
        compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.post_compile_params
        or compiled.escaped_bind_names
    ):
        return None
    names = tuple(compiled.positiontup)
    # Values the caller must give are left out: one missing is a KeyError in `arguments`, not a NULL.
    given = compiled.construct_params(_check=False)
    fixed = {n: given[n] for n in names if not compiled.binds[n].required}
    columns = list(getattr(statement, "exported_columns", ()))
    keys = tuple(c.key for c in columns)
    return Prepared(
        sql=str(compiled),
        names=names,
        binds=tuple(compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names),
        fixed=fixed,
        keys=keys,
        results=tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns),
        metadata=SimpleResultMetaData(keys) if keys else None,
    )


class Pipeline:
    """The statements of one connection, sent to its thread in as few trips as the load allows."""

    def __init__(self, driver: OneTripConnection) -> None:
        self.driver = driver
        # Held for each trip, by this pipeline or by SQLAlchemy running a statement not prepared here.
        self.lock = asyncio.Lock()
        self._queue: list[tuple[str, Any, bool, asyncio.Future[Any]]] = []
        self._draining: asyncio.Task[None] | None = None
        self._begin_pending = False

    async def execute(self, prepared: Prepared, parameters: Any) -> IteratorResult:
        sql, args, many = _bound(prepared, parameters)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((sql, args, many, future))
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain())
        try:
            description, rows, rowcount = await future
        except sqlite3.Error as e:
            raise DBAPIError.instance(sql, args, e, sqlite3.Error) from e
        return prepared.result(description, rows, rowcount)

    # The transaction is ours, not SQLAlchemy's: BEGIN and COMMIT through it would cost a trip and its
    # execution layer each, where BEGIN can ride with the transaction's first statements and COMMIT
    # with its last writes.
    def begin(self) -> None:
        """Begin a transaction (BEGIN IMMEDIATE: it holds the write lock from its first read) with the
        next trip. Should that BEGIN fail, so does every statement of the trip, and the next trip tries
        to begin it again."""
        self._begin_pending = True

    async def run_sqlalchemy(self, work: Callable[[], Awaitable[R]]) -> R:
        """Run a statement through SQLAlchemy's own execution, in the pipeline's transaction."""
        async with self.lock:
            if self._begin_pending:
                await _raising_dbapi_errors("BEGIN IMMEDIATE", self.driver.begin_immediate())
                self._begin_pending = False
            return await work()

    async def commit(self, last_writes: list[tuple[Prepared, Any]]) -> None:
        """Run `last_writes`, then COMMIT, in one trip. If any fails, nothing is committed and this raises."""
        await self.idle()
        async with self.lock:
            statements = [_bound(prepared, parameters) for prepared, parameters in last_writes]
            begin, self._begin_pending = self._begin_pending, False
            if begin and not statements:
                return  # nothing was run: no transaction to end
            await _raising_dbapi_errors("COMMIT", self.driver.commit_after(statements, begin=begin))

    async def rollback(self) -> None:
        # A cancelled turn may have left a statement on its way: it must not run after the ROLLBACK,
        # outside any transaction.
        await self.idle()
        async with self.lock:
            self._begin_pending = False
            await _raising_dbapi_errors("ROLLBACK", self.driver.rollback_if_open())

    async def idle(self) -> None:
        """Return once every statement handed to the pipeline has been run."""
        while self._draining is not None:
            await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        try:
            while self._queue:
                async with self.lock:
                    batch, self._queue = self._queue, []
                    begin, self._begin_pending = self._begin_pending, False
                    try:
                        statements = [(sql, args, many) for sql, args, many, _ in batch]
                        outcomes = await self.driver.run_all(statements, begin=begin)
                    except BaseException as e:  # BEGIN, or the thread itself, failed: every statement did
                        outcomes = [e] * len(batch)
                        # Whatever this transaction runs next must still begin it, never run without one.
                        self._begin_pending = begin
                for (*_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._draining = None


def _bound(prepared: Prepared, parameters: Any) -> tuple[str, Any, bool]:
    many = isinstance(parameters, Sequence) and not isinstance(parameters, str | bytes)
    args = [prepared.arguments(p) for p in parameters] if many else prepared.arguments(parameters)
    return prepared.sql, args, many


async def _raising_dbapi_errors(sql: str, work: Awaitable[None]) -> None:
    try:
        await work
    except sqlite3.Error as e:
        raise DBAPIError.instance(sql, (), e, sqlite3.Error) from e
