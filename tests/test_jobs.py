"""Scheduled jobs: each due job run by exactly one runner (connections, processes, PostgreSQL), retried
with backoff, taken over when its runner dies, run after a start when it fell due while nothing ran;
housekeeping as a recurring job; the runner's lifecycle in `running_bot`."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.config import Settings
from bot.engine.context import BotContext
from bot.runtime import HOUSEKEEPING, HOUSEKEEPING_EVERY, ensure_housekeeping, running_bot
from bot.services import jobs as job_service
from bot.services.jobs import KINDS, LEASE, register, report, run_due, schedule
from bot.services.media import TEMP_DIR
from storage import Database
from storage.jobs import DONE, FAILED, PENDING, RUNNING, Job
from storage.sessions import Session
from tests.test_postgres import pg_url  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parent.parent


async def _record(app: BotContext, job: Job) -> None:
    async with app.db.transaction() as tx:
        await tx.audit.record(app.now(), job.claimed_by or "?", "job.ran", str(job.id))
    await asyncio.sleep(0)  # let the other runners in between


async def _fail(app: BotContext, job: Job) -> None:
    raise RuntimeError("member 13800138000 said something private")


async def _record_slowly(app: BotContext, job: Job) -> None:
    await asyncio.sleep(0.01)  # as a job doing I/O outside any transaction: the database is free meanwhile
    await _record(app, job)


async def _record_after_a_while(app: BotContext, job: Job) -> None:
    await asyncio.sleep(0.6)
    await _record(app, job)


register("test.record", _record)
register("test.long", _record_after_a_while)
register("test.slow", _record_slowly)
register("test.once", _record, max_attempts=1)
register("test.flaky", _fail, max_attempts=3, base_backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=15))


def at(app: BotContext, when: datetime) -> BotContext:
    """The same bot with its clock set to `when`."""
    return replace(app, now=lambda: when)


async def runs(app: BotContext) -> Counter[str]:
    """How many times each job id was run, from what the handler recorded."""
    async with app.db.transaction() as tx:
        return Counter(e.subject for e in await tx.audit.entries(limit=100_000) if e.action == "job.ran")


async def runners_of(app: BotContext) -> Counter[str]:
    async with app.db.transaction() as tx:
        return Counter(e.actor for e in await tx.audit.entries(limit=100_000) if e.action == "job.ran")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[BotContext]:
    async with running_bot(settings, run_jobs=False) as (bot, _):
        yield bot


async def schedule_many(app: BotContext, n: int, kind: str = "test.record") -> list[int]:
    now = app.now()
    async with app.db.transaction() as tx:
        return [(await tx.jobs.schedule(kind, now - timedelta(seconds=i % 7), now)).id for i in range(n)]


async def each_runs_once_with_runners(app: BotContext, runners: int, jobs: int, batch: int = 7) -> None:
    ids = await schedule_many(app, jobs)
    # Each runner is another process's connection to the same database.
    others = [Database(app.settings.database_url) for _ in range(runners)]

    async def runner(db: Database, name: str) -> None:
        own = replace(app, db=db)
        while await run_due(own, runner_id=name, limit=40, batch=batch):
            pass

    try:
        await asyncio.gather(*(runner(db, f"runner-{i}") for i, db in enumerate(others)))
    finally:
        for db in others:
            await db.close()
    counts = await runs(app)
    assert set(counts) == {str(i) for i in ids}  # none skipped
    assert max(counts.values()) == 1  # none twice
    assert len(await runners_of(app)) > 1  # the runners really ran side by side
    async with app.db.transaction() as tx:
        assert await tx.jobs.counts() == {DONE: jobs}


async def test_each_due_job_runs_once_with_three_runners_on_one_sqlite_file(app: BotContext) -> None:
    await each_runs_once_with_runners(app, runners=3, jobs=200)


async def test_each_due_job_runs_once_with_three_runners_on_postgresql(pg_url: str) -> None:  # noqa: F811
    settings = Settings(database_url=pg_url, secret_key="test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    async with running_bot(settings, run_jobs=False) as (bot, _):
        assert bot.db.engine.dialect.name == "postgresql"
        # Few jobs at once per runner: each holds a connection, and the server's are shared with other tests.
        await each_runs_once_with_runners(bot, runners=3, jobs=200, batch=3)


PROCESS = """
import asyncio, sys
from bot.config import Settings
from bot.runtime import running_bot
from bot.services.jobs import run_due
import tests.test_jobs  # registers the test job kinds

async def main(url, name):
    settings = Settings(database_url=url, secret_key="test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    async with running_bot(settings, run_jobs=False) as (app, _):
        print("ready", flush=True)
        sys.stdin.readline()  # both processes start together
        ran = 0
        while n := await run_due(app, runner_id=name, limit=40, batch=5):
            ran += n
    print(ran, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_each_due_job_runs_once_with_two_processes_on_one_sqlite_file(app: BotContext) -> None:
    ids = await schedule_many(app, 300, kind="test.slow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGUNION_")}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PROCESS,
            app.settings.database_url,
            f"process-{i}",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for i in range(2)
    ]
    try:
        for p in procs:
            ready = await asyncio.wait_for(p.stdout.readline(), 60)  # type: ignore[union-attr]
            assert ready == b"ready\n", (await p.stderr.read()).decode()  # type: ignore[union-attr]
        # Both go together: each claims a few jobs at a time while the other waits for SQLite's lock.
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate(b"go\n") for p in procs)), 120)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err.decode() for _, err in outputs]
    ran = [int(out.decode().split()[-1]) for out, _ in outputs]
    counts = await runs(app)
    assert set(counts) == {str(i) for i in ids} and max(counts.values()) == 1
    assert sum(ran) == len(ids) and min(ran) > 0, ran  # both processes took part


async def test_schedule_by_key_twice_is_one_job_and_cancel_and_move_work_by_key(app: BotContext) -> None:
    now = app.now()
    soon, later = now + timedelta(hours=1), now + timedelta(hours=2)
    async with app.db.transaction() as tx:
        first = await tx.jobs.schedule("test.record", soon, now, {"booking": 7}, key="booking:7:remind")
        second = await tx.jobs.schedule("test.record", later, now, {"booking": 7, "v": 2}, key="booking:7:remind")
        assert second.id == first.id and second.due_at == later and second.payload == {"booking": 7, "v": 2}
        await tx.jobs.schedule("test.record", soon, now, key="booking:7:day-before")
        await tx.jobs.schedule("test.record", soon, now, key="booking:70:remind")  # another booking
        await tx.jobs.schedule("test.record", soon, now)  # no key: never replaced
        await tx.jobs.schedule("test.record", soon, now)
        assert (await tx.jobs.counts())[PENDING] == 5

        moved = await tx.jobs.move("booking:7:remind", soon, now)
        assert moved is not None and moved.due_at == soon
        assert await tx.jobs.move("no-such-key", soon, now) is None

        assert await tx.jobs.cancel("booking:70:remind")
        assert not await tx.jobs.cancel("booking:70:remind")
        assert await tx.jobs.cancel_prefix("booking:7:") == 2  # both reminders of booking 7, not 70's
        assert await tx.jobs.get("booking:7:remind") is None
        assert (await tx.jobs.counts())[PENDING] == 2
        # A prefix is matched literally: LIKE's wildcards in it match nothing else.
        await tx.jobs.schedule("test.record", soon, now, key="a_b:1")
        await tx.jobs.schedule("test.record", soon, now, key="axb:1")
        assert await tx.jobs.cancel_prefix("a_b:") == 1

    # Moved before it was due, it does not run now; it runs at its new time.
    assert await run_due(app, runner_id="r") == 0
    async with app.db.transaction() as tx:
        await tx.jobs.schedule("test.record", later, now, key="k")
    assert await run_due(at(app, later), runner_id="r") == 4  # the two without a key, "axb:1", "k"
    async with app.db.transaction() as tx:
        assert (await tx.jobs.get("k")).status == DONE  # type: ignore[union-attr]
        assert await tx.jobs.move("k", later, now) is None  # only a waiting job moves


async def test_a_failing_job_is_retried_with_backoff_then_marked_failed(app: BotContext) -> None:
    t0 = app.now()
    async with app.db.transaction() as tx:
        await tx.jobs.schedule("test.flaky", t0, t0, key="flaky")

    async def job() -> Job:
        async with app.db.transaction() as tx:
            found = await tx.jobs.get("flaky")
        assert found is not None
        return found

    assert await run_due(at(app, t0), runner_id="r") == 1
    first = await job()
    assert (first.status, first.attempts, first.due_at) == (PENDING, 1, t0 + timedelta(seconds=10))
    assert first.last_error == "RuntimeError"  # its type, never its message
    assert await run_due(at(app, t0 + timedelta(seconds=9)), runner_id="r") == 0
    assert await run_due(at(app, t0 + timedelta(seconds=10)), runner_id="r") == 1
    second = await job()
    # Doubled to 20 s, capped at 15 s.
    assert (second.status, second.attempts, second.due_at) == (PENDING, 2, t0 + timedelta(seconds=25))
    assert await run_due(at(app, t0 + timedelta(seconds=24)), runner_id="r") == 0
    assert await run_due(at(app, t0 + timedelta(seconds=25)), runner_id="r") == 1
    third = await job()
    assert (third.status, third.attempts, third.last_error) == (FAILED, 3, "RuntimeError")
    assert await run_due(at(app, t0 + timedelta(days=1)), runner_id="r") == 0

    listing = await report(app)
    assert [j.key for j in listing.failed] == ["flaky"] and listing.counts[FAILED] == 1
    assert "13800138000" not in repr(listing)


async def test_a_job_whose_runner_died_is_run_by_another_once_its_lease_passes(app: BotContext) -> None:
    now = app.now()
    async with app.db.transaction() as tx:
        job = await tx.jobs.schedule("test.record", now, now, key="orphan")
        # A runner claims it, then dies before recording anything.
        [dead] = await tx.jobs.claim_due(list(KINDS), "dead-runner", now, LEASE, 10)
    assert dead.id == job.id and dead.status == RUNNING

    assert await run_due(at(app, now + LEASE - timedelta(seconds=1)), runner_id="alive") == 0
    listing = await report(app)
    assert [j.key for j in listing.running] == ["orphan"]
    assert await run_due(at(app, now + LEASE), runner_id="alive") == 1
    assert await runs(app) == Counter({str(job.id): 1}) and await runners_of(app) == Counter({"alive": 1})
    async with app.db.transaction() as tx:
        assert not await tx.jobs.finish(dead, now + LEASE)  # the dead runner's late word changes nothing
        assert (await tx.jobs.get("orphan")).status == DONE  # type: ignore[union-attr]

    # A job whose runs keep dying is given up after its attempts, not run again and again.
    async with app.db.transaction() as tx:
        await tx.jobs.schedule("test.once", now, now, key="killer")
        assert len(await tx.jobs.claim_due(["test.once"], "dead-runner", now, LEASE, 10)) == 1
    assert await run_due(at(app, now + LEASE), runner_id="alive") == 1
    async with app.db.transaction() as tx:
        killer = await tx.jobs.get("killer")
    assert killer is not None and (killer.status, killer.last_error) == (FAILED, "LeaseExpired")
    assert str(killer.id) not in await runs(app)


async def test_a_long_job_keeps_its_lease_and_stops_when_it_is_cancelled(app: BotContext) -> None:
    lease = timedelta(seconds=0.3)  # renewed every 0.1 s while the job runs
    async with app.db.transaction() as tx:
        long = await tx.jobs.schedule("test.long", app.now(), app.now(), key="long")
    first = asyncio.create_task(run_due(app, runner_id="first", lease=lease))
    await asyncio.sleep(0.45)  # past the first lease: only a renewed one keeps the job from the second runner
    assert await run_due(app, runner_id="second", lease=lease) == 0
    assert await first == 1
    assert await runs(app) == Counter({str(long.id): 1})

    async with app.db.transaction() as tx:
        cancelled = await tx.jobs.schedule("test.long", app.now(), app.now(), key="cancelled")
    running = asyncio.create_task(run_due(app, runner_id="first", lease=lease))
    await asyncio.sleep(0.05)
    async with app.db.transaction() as tx:
        assert await tx.jobs.cancel("cancelled")  # while it runs: its next renewal finds it gone
    assert await running == 1
    assert str(cancelled.id) not in await runs(app)  # stopped before it recorded anything


async def test_a_job_due_while_nothing_ran_runs_once_after_start(settings: Settings) -> None:
    async with running_bot(settings, run_jobs=False) as (app, _):
        past = app.now() - timedelta(hours=3)
        async with app.db.transaction() as tx:
            missed = await tx.jobs.schedule("test.record", past, past, key="missed")
    # Everything was down; now a bot process starts.
    async with running_bot(settings) as (app, _):
        for _ in range(100):
            async with app.db.transaction() as tx:
                if (await tx.jobs.get("missed")).status == DONE:  # type: ignore[union-attr]
                    break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert (await runs(app))[str(missed.id)] == 1
        async with app.db.transaction() as tx:
            housekeeping = await tx.jobs.get(HOUSEKEEPING)
        assert housekeeping is not None and housekeeping.status == PENDING  # ran at start, and waits again
        assert housekeeping.due_at > app.now() + HOUSEKEEPING_EVERY - timedelta(minutes=1)
    async with running_bot(settings) as (app, _):  # a restart runs nothing again
        await asyncio.sleep(0.3)
        assert (await runs(app))[str(missed.id)] == 1
        async with app.db.transaction() as tx:
            assert (await tx.jobs.get(HOUSEKEEPING)).due_at == housekeeping.due_at  # type: ignore[union-attr]


async def test_housekeeping_purges_expired_sessions_and_reschedules_itself(app: BotContext) -> None:
    now = app.now()
    app = at(app, now)
    gone = now - timedelta(minutes=1)
    async with app.db.transaction() as tx:
        await tx.sessions.save(Session("console:a", flow="join", step="name", data={"phone": "enc"}, expires_at=gone))
        await tx.sessions.save(
            Session("console:b", flow="join", step="name", data={"phone": "enc"}, lang="en", expires_at=gone, version=4)
        )
        await tx.sessions.save(Session("console:c", flow="join", step="name", data={"n": 1}, expires_at=now + LEASE))
        await tx.sessions.save(Session("console:d", lang="en"))  # at home: no deadline
        await tx.updates.mark("old", now - timedelta(days=4), '["answer"]')
    await ensure_housekeeping(app)
    await ensure_housekeeping(app)  # every start asks: still one job
    assert await run_due(app, runner_id="r") == 1
    async with app.db.transaction() as tx:
        assert await tx.sessions.get("console:a") is None
        b = await tx.sessions.get("console:b")
        assert b is not None and (b.flow, b.step, b.data, b.choices, b.expires_at) == (None, None, {}, [], None)
        assert b.lang == "en"  # a chosen language outlives the conversation
        assert b.version == 5  # buttons shown before are stale
        assert (await tx.sessions.get("console:c")).data == {"n": 1}  # type: ignore[union-attr]
        assert (await tx.sessions.get("console:d")).lang == "en"  # type: ignore[union-attr]
        assert await tx.updates.seen("old") == (False, None)
        job = await tx.jobs.get(HOUSEKEEPING)
    assert job is not None and (job.status, job.attempts, job.due_at) == (PENDING, 0, now + HOUSEKEEPING_EVERY)
    assert await run_due(app, runner_id="r") == 0
    # Its next run comes round, and sweeps what has expired since, and files a crash left half-stored.
    left = app.settings.media_path() / TEMP_DIR / "left-by-a-crash"
    left.parent.mkdir(parents=True, exist_ok=True)
    left.write_bytes(b"half a photo")
    two_days_ago = (now - timedelta(days=2)).timestamp()
    os.utime(left, (two_days_ago, two_days_ago))
    later = at(app, now + HOUSEKEEPING_EVERY)
    assert await run_due(later, runner_id="r") == 1
    async with app.db.transaction() as tx:
        assert await tx.sessions.get("console:c") is None
    assert not left.exists()


async def test_running_bot_starts_and_stops_its_runner_which_wakes_for_a_job_scheduled_in_process(
    settings: Settings,
) -> None:
    async with running_bot(settings) as (app, _):
        runner = job_service._runners[app.db]
        task = runner._task
        assert task is not None and not task.done()
        await asyncio.sleep(0.3)  # its first pass (housekeeping) is over; the next poll is seconds away
        # Scheduled by a turn (as a flow would), committed with the turn.
        job = await app.db.run_turn(lambda tx: schedule(app, tx, "test.record", app.now(), key="from-a-turn"))
        for _ in range(40):
            if await runs(app):
                break
            await asyncio.sleep(0.05)
        assert (await runs(app))[str(job.id)] == 1  # woken by the schedule, well before its poll
        async with app.db.transaction() as tx:
            with pytest.raises(ValueError):
                await schedule(app, tx, "no.such.kind", app.now())
    assert task.done() and not task.cancelled()  # it stopped by itself, not cut short
    assert app.db not in job_service._runners
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("jobs ")]

    async with running_bot(settings, run_jobs=False) as (app, _):  # a one-shot command runs no jobs
        assert app.db not in job_service._runners
