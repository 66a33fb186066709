"""aiosqlite, with each statement done in one trip to its database thread.

SQLAlchemy's aiosqlite adapter makes a cursor, executes, fetches and closes it as four separate
trips between the event loop and aiosqlite's thread; a turn of the bot runs half a dozen statements,
so those trips, not SQLite, set the pace. This connection hands SQLAlchemy a cursor that does all
four in the thread at once, and runs a list of statements (with BEGIN before them or COMMIT after)
in one trip for `storage.sqlite_direct`. Everything else is aiosqlite's own connection, unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite


def _run(conn: sqlite3.Connection, sql: str, params: Any, many: bool) -> tuple:
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_all(conn: sqlite3.Connection, statements: list[tuple[str, Any, bool]], begin: bool) -> list[Any]:
    if begin:
        conn.execute("BEGIN IMMEDIATE")  # if it fails, it raises: none of them may run outside a transaction
    outcomes: list[Any] = []
    for sql, params, many in statements:
        try:
            outcomes.append(_run(conn, sql, params, many)[:3])
        except sqlite3.Error as e:  # that statement's own failure; SQLite undid only it
            outcomes.append(e)
    return outcomes


class OneTripCursor:
    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def _go(self, sql: str, params: Any, many: bool) -> OneTripCursor:
        conn = self._connection
        self.description, self._rows, self.rowcount, self.lastrowid = await conn._execute(
            _run, conn._conn, sql, params, many
        )
        return self

    async def execute(self, sql: str, parameters: Any = ()) -> OneTripCursor:
        return await self._go(sql, parameters, False)

    async def executemany(self, sql: str, seq_of_parameters: Any) -> OneTripCursor:
        return await self._go(sql, seq_of_parameters, True)

    async def fetchall(self) -> Sequence[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        n = size or self.arraysize
        rows, self._rows = self._rows[:n], self._rows[n:]
        return rows

    async def close(self) -> None:
        self._rows = []


def _begin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def _commit_after(conn: sqlite3.Connection, statements: list[tuple[str, Any, bool]], begin: bool) -> None:
    if begin:
        _begin(conn)
    for sql, params, many in statements:
        _run(conn, sql, params, many)  # the first failure stops here, before COMMIT
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class OneTripConnection(aiosqlite.Connection):
    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def run_all(self, statements: list[tuple[str, Any, bool]], *, begin: bool = False) -> list[Any]:
        """Run (sql, parameters, executemany?) statements in order, in one trip, after BEGIN IMMEDIATE if
        `begin`: for each, its (description, rows, rowcount) or the sqlite3 error it raised. Raises, having
        run none of them, if BEGIN fails."""
        return await self._execute(_run_all, self._conn, statements, begin)

    async def begin_immediate(self) -> None:
        await self._execute(_begin, self._conn)

    async def commit_after(self, statements: list[tuple[str, Any, bool]], *, begin: bool = False) -> None:
        """Run the statements (after BEGIN IMMEDIATE if `begin`), then COMMIT, in one trip; if one fails,
        it raises and nothing is committed (the transaction stays open for the caller to roll back)."""
        await self._execute(_commit_after, self._conn, statements, begin)

    async def rollback_if_open(self) -> None:
        await self._execute(_rollback, self._conn)


def one_trip_creator(path: str):  # type: ignore[no-untyped-def]
    """An `async_creator` for SQLAlchemy's create_async_engine."""

    async def create() -> OneTripConnection:
        conn = OneTripConnection(lambda: sqlite3.connect(path, check_same_thread=False), 64)
        return await conn

    return create
