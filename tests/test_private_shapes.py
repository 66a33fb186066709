"""The fast SQLite path leans on private parts of aiosqlite and SQLAlchemy (storage/sqlite_driver.py,
storage/sqlite_direct.py). pyproject.toml bounds both versions; these tests fail loudly, saying what
moved, when a version inside those bounds changes their shape anyway."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3

import aiosqlite
import sqlalchemy
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects import sqlite

from storage.schema import members, sessions
from storage.sqlite_driver import one_trip_creator

WHY = "storage/sqlite_direct.py and storage/sqlite_driver.py rely on it; adapt them, or bound the version lower"


async def test_aiosqlite_still_runs_functions_in_its_thread_on_a_sqlite3_connection(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute), f"aiosqlite.Connection._execute changed: {WHY}"
    conn = await one_trip_creator(str(tmp_path / "x.db"))()
    try:
        assert isinstance(conn._conn, sqlite3.Connection), f"aiosqlite.Connection._conn changed: {WHY}"
        assert conn.sqlite is conn._conn
        assert await conn._execute(lambda c: c.execute("SELECT 41 + 1").fetchone()[0], conn._conn) == 42
    finally:
        await conn.close()
    await asyncio.sleep(0)


def test_sqlalchemy_compiled_statements_still_expose_what_prepare_reads() -> None:
    dialect = sqlite.dialect(paramstyle="qmark")
    statement = select(sessions).where(sessions.c.user_key == bindparam("user_key"))
    compiled = statement.compile(dialect=dialect, column_keys=[])
    for name in ("positiontup", "binds", "insert_prefetch", "update_prefetch", "post_compile_params"):
        assert hasattr(compiled, name), f"SQLAlchemy {sqlalchemy.__version__}: compiled.{name} is gone: {WHY}"
    assert hasattr(compiled, "escaped_bind_names"), f"compiled.escaped_bind_names is gone: {WHY}"
    assert list(compiled.positiontup) == ["user_key"], f"compiled.positiontup changed: {WHY}"
    assert compiled.binds["user_key"].required, f"BindParameter.required changed: {WHY}"
    assert "user_key" in compiled.construct_params(_check=False), f"construct_params(_check=...) changed: {WHY}"
    # A Python-side default is computed while executing: prepare() must see it and step aside.
    with_defaults = insert(sessions).values(user_key="x", flow="menu").compile(dialect=dialect, column_keys=[])
    assert with_defaults.insert_prefetch, f"compiled.insert_prefetch no longer lists Python-side defaults: {WHY}"


def test_sqlalchemy_results_can_still_be_built_from_plain_rows() -> None:
    from sqlalchemy.engine import IteratorResult
    from sqlalchemy.engine.result import SimpleResultMetaData, result_tuple

    result = IteratorResult(SimpleResultMetaData(["a", "b"]), iter([(1, 2)]))
    row = result.one()
    assert (row.a, row.b, row._mapping["b"]) == (1, 2, 2), f"IteratorResult/SimpleResultMetaData changed: {WHY}"
    assert result_tuple(["id"])((7,)).id == 7, f"sqlalchemy.engine.result.result_tuple changed: {WHY}"
    assert members.primary_key.columns.keys() == ["id"]
