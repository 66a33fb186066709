"""Delivering a broadcast at the platforms' rate limits (filled in next)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from storage.jobs import Job


async def run_job(app: BotContext, job: Job) -> datetime | None:
    return None
