"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_for(conn: AsyncConnection | str, table: Table):  # type: ignore[no-untyped-def]
    """INSERT in the dialect of `conn` (or of that name), which can carry ON CONFLICT clauses."""
    name = conn if isinstance(conn, str) else conn.dialect.name
    return (postgresql if name == "postgresql" else sqlite).insert(table)


def insert_ignoring_conflicts(conn: AsyncConnection | str, table, index_elements: list[str]):  # type: ignore[no-untyped-def]
    """INSERT … ON CONFLICT DO NOTHING in the connected dialect: a duplicate is a no-op, not an error
    that would abort the whole turn's transaction."""
    return insert_for(conn, table).on_conflict_do_nothing(index_elements=index_elements)


def upsert(conn: AsyncConnection, table, index_elements: list[str], values: dict):  # type: ignore[no-untyped-def]
    stmt = insert_for(conn, table).values(**values)
    update = {k: v for k, v in values.items() if k not in index_elements}
    return stmt.on_conflict_do_update(index_elements=index_elements, set_=update)


def upsert_statement(dialect_name: str, table: Table, index_elements: list[str]):  # type: ignore[no-untyped-def]
    """A prebuilt upsert of every column, run with a dict of all of them as parameters."""
    stmt = insert_for(dialect_name, table).values({c.name: bindparam(c.name) for c in table.columns})
    keep = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in index_elements}
    return stmt.on_conflict_do_update(index_elements=index_elements, set_=keep)


def per_dialect(build: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A statement built once per dialect, for the connection it is run on."""
    built: dict[str, Any] = {}

    def for_conn(conn: Any) -> Any:
        name = conn.dialect.name
        if name not in built:
            built[name] = build(name)
        return built[name]

    return for_conn
