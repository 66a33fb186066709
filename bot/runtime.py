"""Putting a running bot together from settings: database (migrated), keys, locale, flows."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta

from bot.config import Settings
from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.flows import all_flows
from bot.locale import Locale
from bot.services import broadcasts  # noqa: F401  (registers the broadcast jobs every bot process runs)
from bot.services.complaints import ensure_retention
from bot.services.jobs import JobRunner, register
from bot.services.media import purge_unlinked
from bot.services.secret_key import configured_key, open_keyring
from storage import Database, migrate
from storage.jobs import DONE, FAILED, Job

log = logging.getLogger(__name__)

# A platform retries an update within seconds; after this the stored answer (which may show the
# member's own details) is no longer needed.
KEEP_ANSWERS = timedelta(hours=1)
KEEP_MARKERS = timedelta(days=3)
KEEP_DONE_JOBS = timedelta(days=7)
KEEP_FAILED_JOBS = timedelta(days=30)  # long enough for staff to see them in `gigunion jobs list`
# A file is linked by the turn it came with; one still unlinked after this belongs to no turn that will.
KEEP_UNLINKED_MEDIA = timedelta(days=1)
HOUSEKEEPING_EVERY = timedelta(minutes=10)
HOUSEKEEPING = "housekeeping"  # the job kind, and the key of its one recurring job


@asynccontextmanager
async def running_bot(
    settings: Settings, *, group_commit: bool = True, run_jobs: bool = True
) -> AsyncIterator[tuple[BotContext, Dispatcher]]:
    """The bot, open for as long as this context is. With `run_jobs` (every bot process) a `JobRunner`
    runs scheduled jobs, housekeeping among them; a one-shot command passes False."""
    configured_key(settings)  # a bad key stops the start before a database is made for it
    db = Database(settings.database_url, group_commit=group_commit)
    try:
        await migrate.upgrade(db)
        app = BotContext(
            settings=settings,
            db=db,
            keyring=await open_keyring(settings, db, may_create=True),
            locale=Locale(),
            flows=all_flows(),
        )
        async with AsyncExitStack() as stack:
            if run_jobs:
                await ensure_housekeeping(app)
                await ensure_retention(app)
                await stack.enter_async_context(JobRunner(app))
            yield app, Dispatcher(app)
    finally:
        await db.close()


def settle_heap() -> None:
    """Call once a long-running process has started. The objects made so far (modules, templates,
    compiled statements: most of the heap) live as long as the process; leaving them to the garbage
    collector would make each of its full collections walk them all, stalling every conversation
    in flight by tens of milliseconds."""
    gc.collect()
    gc.freeze()
    # Most of what a turn allocates dies with it, freed by reference counting; collecting the young
    # generation every 700 allocations (the default) spent about 5 % of a busy server's time.
    gc.set_threshold(10_000, *gc.get_threshold()[1:])


async def tidy(app: BotContext) -> None:
    """Forget stored answers and update markers once no platform can ask for them again, wipe
    conversations left past their deadline, and drop jobs that ended long ago."""
    now = app.now()
    async with app.db.transaction() as tx:
        await tx.updates.forget_replies(now - KEEP_ANSWERS)
        await tx.updates.forget(now - KEEP_MARKERS)
        wiped = await tx.sessions.purge_expired(now)
        await tx.jobs.purge_ended(DONE, now - KEEP_DONE_JOBS)
        await tx.jobs.purge_ended(FAILED, now - KEEP_FAILED_JOBS)
    if wiped:  # one of them may have been an anonymous complaint's draft: its old pages go too
        await app.db.scrub()


async def housekeeping(app: BotContext, job: Job) -> datetime:
    await tidy(app)
    await purge_unlinked(app.db, app.settings.media_path(), app.now() - KEEP_UNLINKED_MEDIA)
    return app.now() + HOUSEKEEPING_EVERY


# Recurring: it schedules its own next run. Should it fail for good, the next start brings it back.
register(HOUSEKEEPING, housekeeping, max_attempts=10, max_backoff=HOUSEKEEPING_EVERY)


async def ensure_housekeeping(app: BotContext) -> None:
    """Have housekeeping scheduled (due now the first time): every process start asks, one job results."""
    async with app.db.transaction() as tx:
        await tx.jobs.ensure(HOUSEKEEPING, HOUSEKEEPING, app.now(), app.now())
