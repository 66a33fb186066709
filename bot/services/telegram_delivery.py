"""Delivering outbox messages on Telegram, and what each Bot API error means for the message.

At most 30 messages a second overall come from the bot's `AIORateLimiter`; this deliverer adds one
message a second per chat, which Telegram asks for. The sender does the waiting and the backoff.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from datetime import timedelta

from aiolimiter import AsyncLimiter
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.engine.messages import Outgoing
from bot.handlers.telegram_render import Renderer
from bot.services.outbox import SENT, Delivery

log = logging.getLogger(__name__)

CHANNEL = "telegram"
_MAX_CHAT_LIMITERS = 1024


def retry_after_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns while moving this attribute from int to timedelta
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def classify(error: TelegramError) -> Delivery:
    """Only the error's type is kept: Telegram's description can quote what was being sent."""
    name = type(error).__name__
    if isinstance(error, RetryAfter):
        return Delivery("retry", retry_after=retry_after_seconds(error), error=name)
    if isinstance(error, Forbidden):  # blocked by the user, or the account is gone
        return Delivery("unreachable", error=name)
    if isinstance(error, BadRequest):
        if "chat not found" in str(error).lower():
            return Delivery("unreachable", error=name)
        return Delivery("failed", error=name)  # the same request would fail again
    return Delivery("retry", error=name)  # NetworkError, TimedOut, a 5xx: try again later


class TelegramDeliverer:
    channel = CHANNEL

    def __init__(self, renderer: Renderer, per_chat_per_second: float = 1.0) -> None:
        self.renderer = renderer
        self.rate = per_chat_per_second
        self._chats: dict[int, AsyncLimiter] = {}

    def _limiter(self, chat_id: int) -> AsyncLimiter:
        if len(self._chats) > _MAX_CHAT_LIMITERS:
            for key, limiter in list(self._chats.items()):
                if key != chat_id and limiter.has_capacity(limiter.max_rate):
                    del self._chats[key]
        if chat_id not in self._chats:
            self._chats[chat_id] = AsyncLimiter(1, 1 / self.rate)
        return self._chats[chat_id]

    async def deliver(self, user_key: str, message: Outgoing) -> Delivery:
        channel, _, uid = user_key.partition(":")
        if channel != CHANNEL or not uid.lstrip("-").isdigit():
            return Delivery("failed", error="bad user key")
        chat_id = int(uid)
        limiter = self._limiter(chat_id)
        started = False

        async def pace() -> None:
            # Telegram counts requests as they arrive: the next part of a message waits a full interval
            # from the end of the one before, however long that one took to upload (a photo).
            nonlocal started
            if started:
                await asyncio.sleep(1 / self.rate)
            started = True
            await limiter.acquire()

        try:
            await self.renderer.send(chat_id, message, pace=pace)
        except TelegramError as e:
            result = classify(e)
            log.info("telegram delivery not done: %s -> %s", result.error, result.status)
            return result
        return SENT
