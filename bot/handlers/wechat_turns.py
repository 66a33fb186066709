"""WeChat's 5-second rule and its retries.

WeChat waits 5 s for an answer, then sends the same message again (up to three times). A turn that
is not done within the deadline is answered "success" and its reply goes out later as customer-service
messages. Retries meet the turn still running (and wait on that same turn) or the answer it gave, so a
message is handled once and every copy gets the same answer. The engine's dedupe marker covers the
same ground across restarts and processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.engine.dispatcher import Dispatcher
from bot.engine.messages import Incoming, Outgoing

log = logging.getLogger(__name__)

HANDED_OFF = ""  # answered "success": the whole reply goes through the customer-service API


@dataclass
class _Turn:
    task: asyncio.Task[None] | None = None
    answer: str | None = None  # the passive reply text, HANDED_OFF, or None while undecided
    # Requests waiting for the answer: the first copy of the message and any retries. A bare future
    # and a timer per request are much cheaper than asyncio.wait_for, which makes a task each time.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()


# (the turn's messages) -> (passive reply text, what is left for customer-service messages)
Split = Callable[[list[Outgoing]], tuple[str, list[Outgoing]]]
Later = Callable[[str, list[Outgoing]], Awaitable[None]]


class Turns:
    def __init__(
        self, dispatcher: Dispatcher, split: Split, later: Later, *, deadline: float = 4.0, remember: int = 20000
    ) -> None:
        self.dispatcher = dispatcher
        self.split = split
        self.later = later  # queues messages for a user (their user_key) as customer-service messages
        self.deadline = deadline
        self.remember = remember
        self._turns: OrderedDict[str, _Turn] = OrderedDict()

    async def answer(self, incoming: Incoming) -> str:
        """The passive reply for this message, or HANDED_OFF."""
        key = f"{incoming.user_key}|{incoming.dedupe_key}"
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _Turn()
            turn.task = asyncio.create_task(self._run(turn, incoming))
            self._forget_oldest()
        if turn.answer is None:
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            turn.waiters.append(waiter)
            timer = loop.call_later(self.deadline, lambda: waiter.done() or waiter.set_result(None))
            try:
                await waiter
            finally:
                timer.cancel()
        if turn.answer is None:
            # Decided here, before the turn ends; `_run` sees it and sends everything later.
            turn.answer = HANDED_OFF
            log.info("wechat turn passed the deadline; replying by customer-service message")
        return turn.answer

    async def _run(self, turn: _Turn, incoming: Incoming) -> None:
        try:
            outs = await self.dispatcher.handle(incoming)
            if turn.answer is None:
                turn.answer, rest = self.split(outs)
            else:
                rest = outs
            turn.wake()
            if rest:
                await self.later(incoming.user_key, rest)
        except Exception as e:  # the dispatcher has its own boundary; this is the queue failing
            log.error("wechat turn follow-up failed: %s", type(e).__name__)
            if turn.answer is None:
                turn.answer = HANDED_OFF
        finally:
            turn.wake()
            turn.task = None

    def _forget_oldest(self) -> None:
        while len(self._turns) > self.remember:
            key, oldest = next(iter(self._turns.items()))
            if oldest.task is not None:  # still running: keep it, and stop pruning for now
                break
            del self._turns[key]

    async def drain(self) -> None:
        """Let running turns finish (their follow-ups included) before shutting down."""
        tasks = [t.task for t in self._turns.values() if t.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
