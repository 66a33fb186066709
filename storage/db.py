"""The database handle and the unit of work: one `Tx` is one transaction with every repository."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storage.audit import Audit
from storage.bookings import Bookings
from storage.broadcasts import Broadcasts
from storage.claims import Claims
from storage.complaints import Complaints
from storage.events import Events
from storage.group_commit import BUSY_TIMEOUT_MS, OWN_TRANSACTIONS, GroupCommit, SharedConnection
from storage.jobs import Jobs
from storage.media import MediaRepo
from storage.members import Members
from storage.outbox import Outbox
from storage.reports import Reports
from storage.sessions import Sessions
from storage.sqlite_driver import one_trip_creator
from storage.staff import StaffRepo
from storage.tokens import Tokens
from storage.turns import Turns
from storage.updates import Updates

R = TypeVar("R")

# PostgreSQL's "could not serialize access" and "deadlock detected": the turn is run again.
RUN_AGAIN = {"40001", "40P01"}
SERIALIZABLE_ATTEMPTS = 200


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)


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
        # Freed pages are zeroed: a deleted draft or complaint does not linger in the file (DESIGN.md).
        cur.execute("PRAGMA secure_delete=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        if not conn.info.get(OWN_TRANSACTIONS):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str, *, group_commit: bool = True, sqlite_uri: str | None = None) -> None:
        """`sqlite_uri`: open the SQLite file through this `file:` URI instead (e.g. `?mode=ro`), and
        leave its folder as it is."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:" and sqlite_uri is None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # One connection: SQLite has one writer, and turns queueing on one connection are far
            # faster than connections fighting over the file lock.
            creator = one_trip_creator(sqlite_uri, uri=True) if sqlite_uri else one_trip_creator(path or ":memory:")
            self.engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=120, async_creator=creator)
            _prepare_sqlite(self.engine)
        else:
            self.engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        self._scrubbing = asyncio.Lock()
        # On PostgreSQL each turn has its own transaction: the server runs them side by side.
        self._group = (
            GroupCommit(self.engine, Tx, path=path or ":memory:", batching=group_commit) if self.is_sqlite else None
        )

    async def run_turn(self, fn: Callable[[Tx], Awaitable[R]]) -> R:
        """Run `fn` as a turn: all of it is committed or none, and the outcome is as if the turns ran one
        at a time (serializable), on SQLite and on PostgreSQL alike. `fn` may be run more than once, so
        it does no network or file I/O; see `storage.group_commit` for the rules a turn follows.

        On SQLite the turns run one after another and share commits (`storage.group_commit`). On
        PostgreSQL each runs side by side with the others in a SERIALIZABLE transaction of its own, and
        one that the server refuses as not serializable (or as a deadlock) is run again."""
        if self._group is not None:
            return await self._group.run(fn)
        for attempt in range(1, SERIALIZABLE_ATTEMPTS + 1):
            try:
                async with self.engine.connect() as conn:
                    await conn.execution_options(isolation_level="SERIALIZABLE")
                    async with conn.begin():
                        return await fn(Tx(conn))
            except DBAPIError as e:
                if _sqlstate(e) not in RUN_AGAIN or attempt == SERIALIZABLE_ATTEMPTS:
                    raise
            # Turns that collided collide again if they run again at once: spread them out.
            await asyncio.sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        if self._group is not None:
            async with self._group.exclusive() as conn:
                yield Tx(conn)
        else:
            async with self.engine.begin() as conn:
                yield Tx(conn)

    async def scrub(self) -> bool:
        """Leave no old copy of a page behind outside the database file itself: on SQLite, copy the
        write-ahead log back and truncate it, so a draft just wiped from a session is in no earlier
        frame of the -wal file (freed space in the file is zeroed already: secure_delete). Call it
        after the transaction that wiped it has committed. False when another connection kept the
        log busy past the wait (the next scrub takes it). PostgreSQL keeps no such file we could reach."""
        if not self.is_sqlite or self._group is None or self._group.path == ":memory:":
            return True
        async with self._scrubbing:  # a second checkpoint at once would fail at once (SQLITE_BUSY)
            return await asyncio.to_thread(_truncate_log, self._group.path)

    async def close(self) -> None:
        if self._group is not None:
            await self._group.close()
        await self.engine.dispose()


def _truncate_log(path: str) -> bool:
    # A connection of its own, opened and closed in this thread, as `group_commit._checkpoint` does.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0
    finally:
        conn.close()


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
        self.claims = Claims(conn)
        self.bookings = Bookings(conn)
        self.complaints = Complaints(conn)
        self.reports = Reports(conn)
        self.events = Events(conn)
        self.broadcasts = Broadcasts(conn)
