"""Running scheduled jobs: a registry of job kinds, `run_due` for one pass, and `JobRunner` for a process.

A job kind is an async handler `(app, job) -> datetime | None`. It runs outside any turn, so it may do
I/O (fetch, send) and records what it did in transactions of its own (`app.db.transaction()`). Return
a time to run it again (recurring work), or None when it is done. Raise to have it retried with a
doubling wait; after its kind's `max_attempts` runs it is marked failed (`gigunion jobs list`).

As the outbox sender does, a pass claims due jobs in one short transaction, runs them outside it, and
records each result in another. The claim is one conditional UPDATE (`storage.jobs`), so several
runners (processes on one SQLite file, or machines on one PostgreSQL database) never run a job twice.
While a job runs its lease is renewed; a runner killed mid-job lets the lease pass, and another runner
then takes the job again. Delivery is therefore at least once: a handler whose run was cut short runs
again, so it should record what it did and skip what is already done.

Schedule from a flow or service with `schedule(app, tx, …)`: it is committed with the caller's
transaction, and wakes this process's runner early if the job is due before its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from bot.engine.context import BotContext
from storage import Database, Tx
from storage.jobs import FAILED, PENDING, RUNNING, Job

log = logging.getLogger(__name__)

Handler = Callable[[BotContext, Job], Awaitable[datetime | None]]

LEASE = timedelta(minutes=5)  # renewed every third of it while the job runs
POLL_EVERY = 5.0  # seconds between looks at the table when nothing told this process of a job
SETTLE = 0.2  # seconds: a job scheduled in-process is looked for once its transaction has committed
STOP_GRACE = 10.0  # seconds a stopping runner lets the jobs under way finish before cutting them short


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    max_attempts: int = 5
    base_backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=1)


KINDS: dict[str, JobKind] = {}


def register(
    name: str,
    handler: Handler,
    *,
    max_attempts: int = 5,
    base_backoff: timedelta = timedelta(seconds=30),
    max_backoff: timedelta = timedelta(hours=1),
) -> JobKind:
    """Make `name` runnable by every runner of this process. A second, different handler for the same
    name is a mistake that would run the wrong code, so it fails at import."""
    kind = JobKind(name, handler, max_attempts, base_backoff, max_backoff)
    existing = KINDS.get(name)
    if existing is not None and existing.handler is not handler:
        raise ValueError(f"job kind {name!r} is registered twice")
    KINDS[name] = kind
    return kind


def job_kind(name: str, **options: Any) -> Callable[[Handler], Handler]:
    """Decorator form of `register`."""

    def decorate(handler: Handler) -> Handler:
        register(name, handler, **options)
        return handler

    return decorate


def new_runner_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# -- scheduling ------------------------------------------------------------------------------------
async def schedule(
    app: BotContext,
    tx: Tx,
    kind: str,
    due_at: datetime,
    payload: Mapping[str, Any] | None = None,
    *,
    key: str | None = None,
) -> Job:
    """Schedule `kind` at `due_at` in the caller's transaction (a job under `key` is replaced). The
    payload holds ids, never personal data. Safe inside a turn: nothing runs until it commits."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    job = await tx.jobs.schedule(kind, due_at, app.now(), payload, key=key)
    nudge(app, due_at)
    return job


def nudge(app: BotContext, due_at: datetime) -> None:
    """Tell this process's runner that a job falls due at `due_at`, in case that is before its next poll."""
    runner = _runners.get(app.db)
    if runner is not None:
        runner.nudge(due_at)


# -- running ---------------------------------------------------------------------------------------
async def run_due(
    app: BotContext,
    *,
    runner_id: str,
    limit: int = 100,
    batch: int = 20,
    kinds: Mapping[str, JobKind] | None = None,
    lease: timedelta = LEASE,
) -> int:
    """Run the jobs due now, claiming `batch` at a time, until none is left or `limit` have run (for
    `gigunion jobs run` from cron or a timer, and for each poll of a `JobRunner`). How many ran."""
    kinds = KINDS if kinds is None else kinds
    ran = 0
    while ran < limit:
        now = app.now()
        async with app.db.transaction() as tx:
            claimed = await tx.jobs.claim_due(list(kinds), runner_id, now, lease, min(batch, limit - ran))
        if not claimed:
            break
        await asyncio.gather(*(_run_one(app, kinds[job.kind], job, lease) for job in claimed))
        ran += len(claimed)
    return ran


async def _run_one(app: BotContext, kind: JobKind, job: Job, lease: timedelta) -> None:
    if job.attempts > kind.max_attempts:
        # Only runs cut short (the runner died, its lease passed) get here: give up rather than let a
        # job that kills its runner take down every runner in turn.
        await _record(app, job, kind, error="LeaseExpired")
        return
    work = asyncio.ensure_future(kind.handler(app, job))
    keeping = asyncio.ensure_future(_keep_lease(app, job, lease, work))
    try:
        again = await work
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():  # we are being stopped, not the handler alone
            raise
        log.warning("job %s #%d stopped: its lease was lost", job.kind, job.id)
        return
    except Exception as e:  # one job's failure is recorded on it; the others run on
        log.warning("job %s #%d failed: %s (attempt %d)", job.kind, job.id, type(e).__name__, job.attempts)
        await _record(app, job, kind, error=type(e).__name__)
        return
    finally:
        keeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeping
        if not work.done():  # this task itself was cancelled: so is the handler
            work.cancel()
    await _record(app, job, kind, again=again)


async def _keep_lease(app: BotContext, job: Job, lease: timedelta, work: asyncio.Future[Any]) -> None:
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        try:
            async with app.db.transaction() as tx:
                held = await tx.jobs.renew(job, app.now() + lease)
        except Exception as e:  # a busy database: try again before the lease runs out
            log.warning("job %s #%d: lease not renewed: %s", job.kind, job.id, type(e).__name__)
            continue
        if not held:  # another runner has it, or it was cancelled: stop rather than run it twice
            work.cancel()
            return


async def _record(
    app: BotContext, job: Job, kind: JobKind, *, again: datetime | None = None, error: str | None = None
) -> None:
    now = app.now()
    try:
        async with app.db.transaction() as tx:
            if error is not None:
                status = await tx.jobs.fail(
                    job,
                    error,
                    now,
                    max_attempts=kind.max_attempts,
                    base=kind.base_backoff,
                    cap=kind.max_backoff,
                )
                if status == FAILED:
                    log.error("job %s #%d failed for good after %d attempts", job.kind, job.id, job.attempts)
            elif again is not None:
                await tx.jobs.again(job, again, now)
            else:
                await tx.jobs.finish(job, now)
    except Exception as e:  # unrecorded, the job is taken again once its lease passes
        log.warning("job %s #%d: result not recorded: %s", job.kind, job.id, type(e).__name__)
    if again is not None:
        nudge(app, again)


# -- reporting -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobReport:
    due: list[Job]  # waiting, their time come
    running: list[Job]
    failed: list[Job]  # failed for good, latest first
    counts: dict[str, int]  # by status
    next_due: datetime | None  # the soonest waiting job


async def report(app: BotContext, *, limit: int = 50) -> JobReport:
    """What is due and what failed, for `gigunion jobs list`."""
    now = app.now()
    async with app.db.transaction() as tx:
        return JobReport(
            due=await tx.jobs.list(PENDING, now, limit),
            running=await tx.jobs.list(RUNNING, now + timedelta(days=36500), limit),
            failed=await tx.jobs.failed(limit),
            counts=await tx.jobs.counts(),
            next_due=await tx.jobs.next_due(),
        )


# -- a process's runner ----------------------------------------------------------------------------
_runners: weakref.WeakKeyDictionary[Database, JobRunner] = weakref.WeakKeyDictionary()


class JobRunner:
    """Runs due jobs for as long as it is open: at once on start (so a job that fell due while every
    process was down runs now), then every `poll` seconds, and early when `nudge`d."""

    def __init__(
        self, app: BotContext, *, runner_id: str | None = None, poll: float = POLL_EVERY, batch: int = 20
    ) -> None:
        self.app = app
        self.runner_id = runner_id or new_runner_id()
        self.poll = poll
        self.batch = batch
        self._wake = asyncio.Event()
        self._wake_at = math.inf  # loop time of the earliest nudge not yet acted on
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> JobRunner:
        self._task = asyncio.create_task(self._loop(), name=f"jobs {self.runner_id}")
        _runners[self.app.db] = self
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        if _runners.get(self.app.db) is self:
            del _runners[self.app.db]
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE)
        except TimeoutError:  # a job that overstays is cut short; its lease passes and it runs again
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    def nudge(self, due_at: datetime) -> None:
        delay = max((due_at - self.app.now()).total_seconds(), 0.0) + SETTLE
        self._wake_at = min(self._wake_at, asyncio.get_running_loop().time() + delay)
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake_at = math.inf  # nudges from here on are for jobs this pass may not see
            limit = self.batch * 5
            try:
                ran = await run_due(self.app, runner_id=self.runner_id, limit=limit, batch=self.batch)
            except Exception as e:  # a busy or restarting database now is no reason to stop later
                log.warning("jobs not run: %s", type(e).__name__)
                ran = 0
            if ran < limit:  # else more may be due at once
                await self._sleep()

    async def _sleep(self) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + self.poll
        while not self._stopping:
            remaining = min(until, self._wake_at) - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)
