"""The database handle and the unit of work: one `Tx` is one transaction with every repository."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storage.audit import Audit
from storage.group_commit import OWN_TRANSACTIONS, GroupCommit, SharedConnection
from storage.jobs import Jobs
from storage.media import MediaRepo
from storage.members import Members
from storage.outbox import Outbox
from storage.sessions import Sessions
from storage.sqlite_driver import one_trip_creator
from storage.staff import StaffRepo
from storage.tokens import Tokens
from storage.turns import Turns
from storage.updates import Updates

R = TypeVar("R")


def _prepare_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling skips BEGIN before SELECTs and breaks SAVEPOINT; take it
    # over so that a turn is one real transaction that holds the write lock from its first read.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        if not conn.info.get(OWN_TRANSACTIONS):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str, *, group_commit: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # One connection: SQLite has one writer, and turns queueing on one connection are far
            # faster than connections fighting over the file lock.
            self.engine = create_async_engine(
                url, pool_size=1, max_overflow=0, pool_timeout=120, async_creator=one_trip_creator(path or ":memory:")
            )
            _prepare_sqlite(self.engine)
        else:
            self.engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        # On PostgreSQL each turn has its own transaction: the server runs them side by side.
        self._group = GroupCommit(self.engine, Tx, batching=group_commit) if self.is_sqlite else None

    async def run_turn(self, fn: Callable[[Tx], Awaitable[R]]) -> R:
        """Run `fn` in a transaction of its own, or in a group-committed batch with other turns (see
        `storage.group_commit`): all of it is committed or none, and `fn` may be run again."""
        if self._group is not None:
            return await self._group.run(fn)
        async with self.transaction() as tx:
            return await fn(tx)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        if self._group is not None:
            async with self._group.exclusive() as conn:
                yield Tx(conn)
        else:
            async with self.engine.begin() as conn:
                yield Tx(conn)

    async def close(self) -> None:
        if self._group is not None:
            await self._group.close()
        await self.engine.dispose()


class Tx:
    """Every repository, bound to one open transaction."""

    def __init__(self, conn: AsyncConnection | SharedConnection) -> None:
        self.conn = conn
        self.members = Members(conn)
        self.sessions = Sessions(conn)
        self.updates = Updates(conn)
        self.staff = StaffRepo(conn)
        self.audit = Audit(conn)
        self.outbox = Outbox(conn)
        self.tokens = Tokens(conn)
        self.turns = Turns(conn)
        self.jobs = Jobs(conn)
        self.media = MediaRepo(conn)
