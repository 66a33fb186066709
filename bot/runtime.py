"""Putting a running bot together from settings: database (migrated), keys, locale, flows."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from bot.config import Settings
from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.flows import all_flows
from bot.locale import Locale
from bot.services.crypto import Keyring
from storage import Database, migrate

log = logging.getLogger(__name__)

# A platform retries an update within seconds; after this the stored answer (which may show the
# member's own details) is no longer needed.
KEEP_ANSWERS = timedelta(hours=1)
KEEP_MARKERS = timedelta(days=3)
HOUSEKEEPING_EVERY = 600.0  # seconds


@asynccontextmanager
async def running_bot(settings: Settings, *, group_commit: bool = True) -> AsyncIterator[tuple[BotContext, Dispatcher]]:
    db = Database(settings.database_url, group_commit=group_commit)
    try:
        await migrate.upgrade(db)
        app = BotContext(
            settings=settings,
            db=db,
            keyring=Keyring(settings.resolved_secret_key()),
            locale=Locale(),
            flows=all_flows(),
        )
        housekeeping = asyncio.create_task(_tidy_every(app, HOUSEKEEPING_EVERY))
        try:
            yield app, Dispatcher(app)
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
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
    """Forget stored answers and update markers once no platform can ask for them again."""
    async with app.db.transaction() as tx:
        await tx.updates.forget_replies(app.now() - KEEP_ANSWERS)
        await tx.updates.forget(app.now() - KEEP_MARKERS)


async def _tidy_every(app: BotContext, seconds: float) -> None:
    while True:
        try:
            await tidy(app)
        except Exception as e:  # a busy database now is no reason to stop tidying later
            log.warning("housekeeping failed: %s", type(e).__name__)
        await asyncio.sleep(seconds)
