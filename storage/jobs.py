"""Scheduled jobs: time-based work stored with its due time, claimed by exactly one runner at a time.

A runner claims due jobs in one conditional UPDATE (`claim_due`): the job becomes 'running' under the
runner's name with a lease, and its attempt is counted. Every later write about that run (`finish`,
`again`, `fail`, `renew`) is guarded by the same claim — id, status 'running', runner and attempt — so a
runner whose lease ran out, and whose job another runner took over, changes nothing by finishing late.
A runner killed mid-job simply stops renewing its lease; once the lease has passed the job is due again.

On SQLite the claim holds the write lock (BEGIN IMMEDIATE), so two processes on one file take turns; on
PostgreSQL `FOR UPDATE SKIP LOCKED` lets concurrent runners each take different jobs, and the outer
WHERE repeats the claimable test, so a row that changed meanwhile is not taken twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import insert_for, per_dialect
from storage.schema import jobs

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    key: str | None
    payload: dict[str, Any] = field(hash=False)
    status: str
    due_at: datetime
    attempts: int  # runs started, the one under way included
    claimed_by: str | None
    lease_until: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


def job_from(row: Mapping[str, Any]) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        key=row["key"],
        payload=json.loads(row["payload"]),
        status=row["status"],
        due_at=row["due_at"],
        attempts=row["attempts"],
        claimed_by=row["claimed_by"],
        lease_until=row["lease_until"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def backoff(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """How long to wait after the `attempts`-th failed run: doubling from `base`, never above `cap`."""
    return min(base * 2 ** max(attempts - 1, 0), cap)


# Bind names differ from column names: SQLAlchemy reserves a column's own name in VALUES and SET.
_NEW = {
    "kind": bindparam("kind_"),
    "key": bindparam("key_"),
    "payload": bindparam("payload_"),
    "status": PENDING,
    "due_at": bindparam("due"),
    "attempts": 0,
    "claimed_by": None,
    "lease_until": None,
    "last_error": None,
    "created_at": bindparam("now"),
    "updated_at": bindparam("now"),
}
_FRESH = {"status": PENDING, "attempts": 0, "claimed_by": None, "lease_until": None, "last_error": None}


def _schedule(dialect: str):  # type: ignore[no-untyped-def]
    stmt = insert_for(dialect, jobs).values(_NEW)
    # Replacing a running job resets its claim: the runner's late `finish` then changes nothing, and
    # the job runs again at its new time, as the caller asked.
    replace = {
        "kind": stmt.excluded.kind,
        "payload": stmt.excluded.payload,
        "due_at": stmt.excluded.due_at,
        "updated_at": stmt.excluded.updated_at,
        **_FRESH,
    }
    return stmt.on_conflict_do_update(index_elements=["key"], set_=replace).returning(*jobs.c)


def _ensure(dialect: str):  # type: ignore[no-untyped-def]
    stmt = insert_for(dialect, jobs).values(_NEW)
    # A job already waiting or running keeps its time (every start of every process asks again); one
    # that has ended is brought back.
    revive = {"due_at": stmt.excluded.due_at, "updated_at": stmt.excluded.updated_at, **_FRESH}
    return stmt.on_conflict_do_update(
        index_elements=["key"], set_=revive, where=jobs.c.status.in_([DONE, FAILED])
    ).returning(*jobs.c)


_SCHEDULE = per_dialect(_schedule)
_ENSURE = per_dialect(_ensure)
_CANCEL = delete(jobs).where(jobs.c.key == bindparam("key_")).returning(jobs.c.id)
_CANCEL_LIKE = delete(jobs).where(jobs.c.key.like(bindparam("pattern"), escape="\\")).returning(jobs.c.id)
_MOVE = (
    update(jobs)
    .where(jobs.c.key == bindparam("key_"), jobs.c.status == PENDING)
    .values(due_at=bindparam("due"), updated_at=bindparam("now"))
    .returning(*jobs.c)
)
_CLAIMABLE = ((jobs.c.status == PENDING) & (jobs.c.due_at <= bindparam("now"))) | (
    (jobs.c.status == RUNNING) & (jobs.c.lease_until <= bindparam("now"))
)
_CLAIM = (
    update(jobs)
    .where(
        jobs.c.id.in_(
            select(jobs.c.id)
            .where(jobs.c.kind.in_(bindparam("kinds", expanding=True)), _CLAIMABLE)
            .order_by(jobs.c.due_at, jobs.c.id)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite's claim holds the write lock
        ),
        _CLAIMABLE,
    )
    .values(
        status=RUNNING,
        claimed_by=bindparam("runner"),
        lease_until=bindparam("until"),
        attempts=jobs.c.attempts + 1,
        updated_at=bindparam("now"),
    )
    .returning(*jobs.c)
)

_CLAIMED = (
    (jobs.c.id == bindparam("id_"))
    & (jobs.c.status == RUNNING)
    & (jobs.c.claimed_by == bindparam("runner"))
    & (jobs.c.attempts == bindparam("attempt"))
)
_RELEASED = {"claimed_by": None, "lease_until": None}
_RENEW = update(jobs).where(_CLAIMED).values(lease_until=bindparam("until")).returning(jobs.c.id)
_DONE = (
    update(jobs)
    .where(_CLAIMED)
    .values(status=DONE, last_error=None, updated_at=bindparam("now"), **_RELEASED)
    .returning(jobs.c.id)
)
_AGAIN = (
    update(jobs)
    .where(_CLAIMED)
    .values(due_at=bindparam("due"), updated_at=bindparam("now"), **_FRESH)
    .returning(jobs.c.id)
)
_RETRY = (
    update(jobs)
    .where(_CLAIMED)
    .values(
        status=PENDING, due_at=bindparam("due"), last_error=bindparam("error"), updated_at=bindparam("now"), **_RELEASED
    )
    .returning(jobs.c.id)
)
_FAIL = (
    update(jobs)
    .where(_CLAIMED)
    .values(status=FAILED, last_error=bindparam("error"), updated_at=bindparam("now"), **_RELEASED)
    .returning(jobs.c.id)
)

_BY_KEY = select(jobs).where(jobs.c.key == bindparam("key_"))
_BY_ID = select(jobs).where(jobs.c.id == bindparam("id_"))
_LIST = (
    select(jobs)
    .where(jobs.c.status == bindparam("status_"), jobs.c.due_at <= bindparam("by"))
    .order_by(jobs.c.due_at, jobs.c.id)
    .limit(bindparam("limit"))
)
_LIST_FAILED = select(jobs).where(jobs.c.status == FAILED).order_by(jobs.c.updated_at.desc()).limit(bindparam("limit"))
_COUNTS = select(jobs.c.status, func.count()).group_by(jobs.c.status)
_NEXT_DUE = select(func.min(jobs.c.due_at)).where(jobs.c.status == PENDING)
_PURGE_ENDED = delete(jobs).where(jobs.c.status == bindparam("status_"), jobs.c.updated_at < bindparam("before"))


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _claim_of(job: Job) -> dict[str, Any]:
    return {"id_": job.id, "runner": job.claimed_by, "attempt": job.attempts}


class Jobs:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # -- scheduling: what flows and services call, inside their own transaction ---------------------
    async def schedule(
        self,
        kind: str,
        due_at: datetime,
        now: datetime,
        payload: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> Job:
        """Run `kind` at `due_at`. With a `key`, a job already under that key is replaced (its time,
        payload and attempts), so scheduling the same reminder twice leaves one."""
        row = (await self.conn.execute(_SCHEDULE(self.conn), self._new(kind, key, due_at, now, payload))).one()
        return job_from(row._mapping)

    async def ensure(
        self, kind: str, key: str, due_at: datetime, now: datetime, payload: Mapping[str, Any] | None = None
    ) -> Job | None:
        """Schedule under `key` unless a job is already waiting or running there (then None): for
        recurring work that every process start asks for, without pushing its time back each time."""
        row = (await self.conn.execute(_ENSURE(self.conn), self._new(kind, key, due_at, now, payload))).first()
        return job_from(row._mapping) if row else None

    async def cancel(self, key: str) -> bool:
        """Remove the job under `key`, whatever its state; False when there was none. A run already
        under way finishes, but records nothing and does not recur."""
        return (await self.conn.execute(_CANCEL, {"key_": key})).first() is not None

    async def cancel_prefix(self, prefix: str) -> int:
        """Remove every job whose key starts with `prefix` (say, "booking:42:"); how many there were."""
        return len((await self.conn.execute(_CANCEL_LIKE, {"pattern": _like_prefix(prefix)})).all())

    async def move(self, key: str, due_at: datetime, now: datetime) -> Job | None:
        """Give the waiting job under `key` a new time; None when none is waiting (schedule it anew)."""
        row = (await self.conn.execute(_MOVE, {"key_": key, "due": due_at, "now": now})).first()
        return job_from(row._mapping) if row else None

    # -- running: what runners call, each in a short transaction of its own -------------------------
    async def claim_due(
        self, kinds: Sequence[str], runner: str, now: datetime, lease: timedelta, limit: int
    ) -> list[Job]:
        """Take up to `limit` due jobs of `kinds` for `runner`: pending ones whose time has come, and
        running ones whose runner let its lease pass. Each is taken by one runner only."""
        if not kinds:
            return []
        params = {"kinds": list(kinds), "runner": runner, "now": now, "until": now + lease, "limit": limit}
        rows = await self.conn.execute(_CLAIM, params)
        return sorted((job_from(r._mapping) for r in rows), key=lambda j: (j.due_at, j.id))

    async def renew(self, job: Job, until: datetime) -> bool:
        """Extend the lease of a run under way; False when it was lost (another runner has the job,
        or it was cancelled or replaced)."""
        return (await self.conn.execute(_RENEW, {**_claim_of(job), "until": until})).first() is not None

    async def finish(self, job: Job, now: datetime) -> bool:
        """Mark a run done; False when the claim was lost meanwhile (and nothing was changed)."""
        return (await self.conn.execute(_DONE, {**_claim_of(job), "now": now})).first() is not None

    async def again(self, job: Job, due_at: datetime, now: datetime) -> bool:
        """End a run of recurring work by scheduling its next run, attempts counted afresh."""
        return (await self.conn.execute(_AGAIN, {**_claim_of(job), "due": due_at, "now": now})).first() is not None

    async def fail(
        self, job: Job, error: str, now: datetime, *, max_attempts: int, base: timedelta, cap: timedelta
    ) -> str | None:
        """Record a failed run: pending again after a doubling wait, or failed for good once it has
        had `max_attempts` runs. `error` is a type name, never a message (messages carry user data).
        Returns the new status, or None when the claim was lost."""
        claim = {**_claim_of(job), "error": error[:64], "now": now}
        if job.attempts >= max_attempts:
            row = (await self.conn.execute(_FAIL, claim)).first()
            return FAILED if row else None
        due = now + backoff(job.attempts, base, cap)
        row = (await self.conn.execute(_RETRY, {**claim, "due": due})).first()
        return PENDING if row else None

    # -- reading and tidying ------------------------------------------------------------------------
    async def get(self, key: str) -> Job | None:
        row = (await self.conn.execute(_BY_KEY, {"key_": key})).first()
        return job_from(row._mapping) if row else None

    async def by_id(self, job_id: int) -> Job | None:
        row = (await self.conn.execute(_BY_ID, {"id_": job_id})).first()
        return job_from(row._mapping) if row else None

    async def list(self, status: str, due_by: datetime, limit: int = 50) -> list[Job]:
        """Jobs in `status` due by `due_by`, soonest first."""
        rows = await self.conn.execute(_LIST, {"status_": status, "by": due_by, "limit": limit})
        return [job_from(r._mapping) for r in rows]

    async def failed(self, limit: int = 50) -> list[Job]:
        """Jobs that failed for good, latest first."""
        return [job_from(r._mapping) for r in await self.conn.execute(_LIST_FAILED, {"limit": limit})]

    async def counts(self) -> dict[str, int]:
        return {status: n for status, n in await self.conn.execute(_COUNTS)}

    async def next_due(self) -> datetime | None:
        return (await self.conn.execute(_NEXT_DUE)).scalar()

    async def purge_ended(self, status: str, before: datetime) -> int:
        """Delete jobs that ended in `status` (done or failed) before `before`."""
        return (await self.conn.execute(_PURGE_ENDED, {"status_": status, "before": before})).rowcount

    @staticmethod
    def _new(
        kind: str, key: str | None, due_at: datetime, now: datetime, payload: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "kind_": kind,
            "key_": key,
            "payload_": json.dumps(dict(payload or {}), ensure_ascii=False, sort_keys=True),
            "due": due_at,
            "now": now,
        }
