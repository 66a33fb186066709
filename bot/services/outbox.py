"""Delivering the outbox: one sender loop per channel, each with a channel's `Deliverer`.

The sender claims due messages in one transaction, delivers them outside any transaction (a slow
platform must not hold the database), and records each result in its own short transaction. Rate
limits are the deliverer's business (python-telegram-bot's rate limiter, WeChat's quotas); the
sender honours what it reports: retry after N seconds, unreachable, or failed for good.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.engine.context import BotContext
from bot.engine.messages import Outgoing
from storage.outbox import FAILED, UNREACHABLE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    status: str  # "sent", "retry", "unreachable", "failed"
    retry_after: float | None = None  # seconds, when the platform said so
    error: str = ""


SENT = Delivery("sent")


class Deliverer(Protocol):
    channel: str

    async def deliver(self, user_key: str, message: Outgoing) -> Delivery: ...


async def enqueue(tx, user_key: str, message: Outgoing, now: datetime) -> int:  # type: ignore[no-untyped-def]
    """Queue a message for a user; committed with the caller's transaction."""
    return await tx.outbox.add(user_key, json.dumps(message.to_json(), ensure_ascii=False), now)


# Private answers (`Outgoing.private`) a platform refused for a moment are tried again from memory,
# this many times at most: never from the outbox, which would keep them under the person they answer.
PRIVATE_ATTEMPTS = 5
_private_tasks: set[asyncio.Task[None]] = set()


def deliver_privately(
    deliverer: Deliverer | None, user_key: str, messages: list[Outgoing], wait: float | None = None
) -> None:
    """Deliver answers of an anonymous conversation in the background, in order, from memory only: a
    process that stops meanwhile loses them (the person can ask again), and nothing is written down."""
    if not messages:
        return
    if deliverer is None:
        log.warning("a private answer was dropped: no deliverer on this channel")
        return
    task = asyncio.ensure_future(_deliver_privately(deliverer, user_key, messages, wait))
    _private_tasks.add(task)
    task.add_done_callback(_private_tasks.discard)


async def _deliver_privately(deliverer: Deliverer, user_key: str, messages: list[Outgoing], wait: float | None) -> None:
    for message in messages:
        for attempt in range(1, PRIVATE_ATTEMPTS + 1):
            await asyncio.sleep(min(wait if wait is not None else 2.0**attempt, 60.0))
            try:
                result = await deliverer.deliver(user_key, message)
            except Exception as e:  # a deliverer bug: the answer is dropped, not kept
                log.error("private delivery raised %s on %s", type(e).__name__, deliverer.channel)
                return
            if result.status == "sent":
                break
            if result.status != "retry" or attempt == PRIVATE_ATTEMPTS:
                log.warning("a private answer was not delivered on %s: %s", deliverer.channel, result.error)
                return
            wait = result.retry_after


class OutboxSender:
    def __init__(
        self,
        app: BotContext,
        deliverer: Deliverer,
        *,
        batch: int = 100,
        max_attempts: int = 8,
        base_backoff: float = 1.0,
        stale_after: timedelta = timedelta(minutes=5),
    ) -> None:
        self.app = app
        self.deliverer = deliverer
        self.batch = batch
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.stale_after = stale_after

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many messages were tried."""
        now = self.app.now()
        async with self.app.db.transaction() as tx:
            items = await tx.outbox.claim_due(self.deliverer.channel, now, self.batch, self.stale_after)
        await asyncio.gather(*(self._one(item) for item in items))
        return len(items)

    async def _one(self, item) -> None:  # type: ignore[no-untyped-def]
        try:
            result = await self.deliverer.deliver(item.user_key, Outgoing.from_json(json.loads(item.body)))
        except Exception as e:  # a deliverer bug must not stop the queue; the message is kept
            log.error("delivery raised %s on %s", type(e).__name__, self.deliverer.channel)
            result = Delivery("retry", error=type(e).__name__)
        now = self.app.now()
        async with self.app.db.transaction() as tx:
            if result.status == "sent":
                await tx.outbox.mark_sent(item.id, now)
            elif result.status == "unreachable":
                await tx.outbox.give_up(item.id, UNREACHABLE, result.error)
                await tx.members.set_unreachable(item.user_key)
            elif result.status == "failed" or item.attempts >= self.max_attempts:
                await tx.outbox.give_up(item.id, FAILED, result.error or "too many attempts")
            else:
                delay = result.retry_after if result.retry_after is not None else self._backoff(item.attempts)
                await tx.outbox.retry_at(item.id, now + timedelta(seconds=delay), result.error)

    def _backoff(self, attempts: int) -> float:
        return min(self.base_backoff * 2 ** (attempts - 1), 300.0)

    async def run_forever(self, stop: asyncio.Event, idle: float = 1.0) -> None:
        while not stop.is_set():
            tried = await self.run_once()
            if not tried:
                try:
                    await asyncio.wait_for(stop.wait(), idle)
                except TimeoutError:
                    pass
