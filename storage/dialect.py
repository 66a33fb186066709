"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_for(conn: AsyncConnection, table: Table):  # type: ignore[no-untyped-def]
    """INSERT in the dialect of `conn`, which can carry ON CONFLICT clauses."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def insert_ignoring_conflicts(conn: AsyncConnection, table, index_elements: list[str]):  # type: ignore[no-untyped-def]
    """INSERT … ON CONFLICT DO NOTHING in the connected dialect: a duplicate is a no-op, not an error
    that would abort the whole turn's transaction."""
    return insert_for(conn, table).on_conflict_do_nothing(index_elements=index_elements)


def upsert(conn: AsyncConnection, table, index_elements: list[str], values: dict):  # type: ignore[no-untyped-def]
    stmt = insert_for(conn, table).values(**values)
    update = {k: v for k, v in values.items() if k not in index_elements}
    return stmt.on_conflict_do_update(index_elements=index_elements, set_=update)
