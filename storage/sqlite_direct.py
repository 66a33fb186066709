"""SQLAlchemy statements run on SQLite's driver directly, on the event loop's own thread.

Measured on this project's turn statements (2-core machine): SQLAlchemy's execution layer costs about
150 µs of CPU a statement and each trip to aiosqlite's thread about as much again, while SQLite itself
needs under 10 µs. Here a statement is compiled by SQLAlchemy once, its parameters and results go
through the column types' own processors, and it runs on sqlite3 at once, on the caller's thread.

That never blocks the event loop on anything but SQLite's own work: a statement runs here only inside
a transaction that already holds SQLite's write lock (see `storage.group_commit`), and in WAL mode
nothing else makes it wait. What can wait is done elsewhere: BEGIN is retried with asyncio sleeps
while another process writes, and checkpoints (which fsync) run in a thread on a connection of their own.

Statements whose values SQLAlchemy computes while executing (Python-side column defaults, expanding
IN lists) are not prepared here; the caller runs those through SQLAlchemy.

This relies on private parts of SQLAlchemy's compiler (`positiontup`, `binds`, `insert_prefetch`…);
pyproject.toml bounds its version and tests/test_private_shapes.py fails loudly when their shape changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer
from sqlalchemy.engine import Dialect, IteratorResult
from sqlalchemy.engine.result import SimpleResultMetaData, result_tuple
from sqlalchemy.exc import DBAPIError, InvalidRequestError

from storage.sqlite_driver import run_statement

Processor = Callable[[Any], Any] | None


_NO_COLUMNS = SimpleResultMetaData([])


class _Written:
    """`inserted_primary_key` for a single-row INSERT, worked out only when asked for (most callers never do)."""

    _inserted: tuple[tuple[str, ...], tuple[Any, ...]] | None = None
    _why_no_key = "inserted_primary_key is only known for a single-row INSERT"

    @property
    def inserted_primary_key(self) -> Any:
        if self._inserted is None:
            raise InvalidRequestError(f"{self._why_no_key}; use RETURNING to read back what a statement wrote")
        keys, values = self._inserted
        return result_tuple(list(keys))(values)


class DirectResult(_Written, IteratorResult):
    """A result as SQLAlchemy gives it."""


class NoRows(_Written):
    """The outcome of a statement that returns no rows (most writes): its `rowcount`. Building SQLAlchemy's
    result object costs more than many of these statements take in SQLite, so it is built only if asked."""

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount

    def __getattr__(self, name: str) -> Any:
        return getattr(DirectResult(_NO_COLUMNS, iter(())), name)


@dataclass(frozen=True)
class Prepared:
    sql: str
    names: tuple[str, ...]  # the positional parameters, in order
    binds: tuple[Processor, ...]
    fixed: dict[str, Any]  # values the statement itself holds (literals, bindparam(value=...))
    keys: tuple[str, ...]  # the result columns
    results: tuple[Processor, ...]
    metadata: SimpleResultMetaData | None
    # An INSERT's primary key: its columns, and which of them SQLite assigns (the rowid) when not given.
    primary_key: tuple[str, ...] = ()
    rowid_key: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_params", tuple(zip(self.names, self.binds, strict=True)))
        object.__setattr__(self, "_processed", tuple((i, p) for i, p in enumerate(self.results) if p is not None))

    def arguments(self, parameters: dict[str, Any] | None) -> list[Any]:
        values = {**self.fixed, **parameters} if self.fixed and parameters else parameters or self.fixed
        return [values[n] if p is None else p(values[n]) for n, p in self._params]  # type: ignore[attr-defined]

    def result(self, outcome: tuple, parameters: Any, many: bool) -> DirectResult | NoRows:
        description, rows, rowcount, lastrowid = outcome
        if description is None:
            result: DirectResult | NoRows = NoRows(rowcount)
        else:
            if self._processed:  # type: ignore[attr-defined]
                rows = [_processed(row, self._processed) for row in rows]  # type: ignore[attr-defined]
            result = DirectResult(self.metadata or SimpleResultMetaData([d[0] for d in description]), iter(rows))
            result.rowcount = rowcount  # type: ignore[attr-defined]
        if self.primary_key and not many:
            given = {**self.fixed, **(parameters or {})}
            rowid = self.rowid_key
            values = tuple(lastrowid if k == rowid and given.get(k) is None else given.get(k) for k in self.primary_key)
            result._inserted = (self.primary_key, values)
        elif self.primary_key:
            result._why_no_key = "inserted_primary_key is not known for an executemany INSERT"
        return result


def _processed(row: tuple, processors: tuple[tuple[int, Callable[[Any], Any]], ...]) -> list[Any]:
    values = list(row)
    for i, process in processors:
        values[i] = process(values[i])
    return values


@lru_cache(maxsize=512)
def prepared_for(statement: Any, dialect: Dialect, given: tuple[str, ...]) -> Prepared | None:
    """`prepare`, looked up by the parameter names in the order the caller gave them (the same at each
    call site), so the common case costs one cache look-up and no sorting."""
    return prepare(statement, dialect, tuple(sorted(given)))


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
    primary_key: tuple[str, ...] = ()
    rowid_key = None
    if getattr(statement, "is_insert", False):
        pk = list(statement.table.primary_key)
        primary_key = tuple(c.key for c in pk)
        if len(pk) == 1 and isinstance(pk[0].type, Integer):
            rowid_key = pk[0].key
    return Prepared(
        sql=str(compiled),
        names=names,
        binds=tuple(compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names),
        fixed=fixed,
        keys=keys,
        results=tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns),
        metadata=SimpleResultMetaData(keys) if keys else None,
        primary_key=primary_key,
        rowid_key=rowid_key,
    )


def run(conn: sqlite3.Connection, prepared: Prepared, parameters: Any) -> DirectResult | NoRows:
    """Run `prepared` with `parameters` (a dict, or a list of them for executemany) on `conn`, now."""
    many = isinstance(parameters, Sequence) and not isinstance(parameters, str | bytes)
    args = [prepared.arguments(p) for p in parameters] if many else prepared.arguments(parameters)
    try:
        outcome = run_statement(conn, prepared.sql, args, many)
    except sqlite3.Error as e:
        raise DBAPIError.instance(prepared.sql, args, e, sqlite3.Error) from e
    return prepared.result(outcome, parameters, many)


def run_sql(conn: sqlite3.Connection, sql: str) -> None:
    """A statement of our own (BEGIN, SAVEPOINT, COMMIT…), its error raised as SQLAlchemy's."""
    try:
        conn.execute(sql)
    except sqlite3.Error as e:
        raise DBAPIError.instance(sql, (), e, sqlite3.Error) from e
