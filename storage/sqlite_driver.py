"""aiosqlite, with each statement done in one trip to its database thread.

SQLAlchemy's aiosqlite adapter makes a cursor, executes, fetches and closes it as four separate
trips between the event loop and aiosqlite's thread. This connection hands SQLAlchemy a cursor that
does all four in the thread at once, for the statements SQLAlchemy still runs itself (migrations, and
those `storage.sqlite_direct` does not prepare). Everything else is aiosqlite's own connection.

This relies on two private parts of aiosqlite (`Connection._execute`, `Connection._conn`); pyproject.toml
bounds its version and tests/test_private_shapes.py fails loudly when their shape changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite


def run_statement(conn: sqlite3.Connection, sql: str, params: Any, many: bool) -> tuple:
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
            run_statement, conn._conn, sql, params, many
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


class OneTripConnection(aiosqlite.Connection):
    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection itself, for statements run on the caller's thread (`storage.sqlite_direct`).
        Only while nothing else runs on it in aiosqlite's thread."""
        return self._conn


def one_trip_creator(path: str, *, uri: bool = False):  # type: ignore[no-untyped-def]
    """An `async_creator` for SQLAlchemy's create_async_engine; with `uri`, `path` is a `file:` URI."""

    async def create() -> OneTripConnection:
        conn = OneTripConnection(lambda: sqlite3.connect(path, check_same_thread=False, uri=uri), 64)
        return await conn

    return create
