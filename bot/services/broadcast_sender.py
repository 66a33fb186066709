"""Delivering a broadcast at the platforms' rate limits, resumable after a crash.

Per channel, a feeder claims a batch of due rows in one short transaction (they become `sending`),
workers deliver them outside any transaction, paced by a token bucket (`Pacer`) at the channel's
rate, and a recorder writes each result once the platform has answered, in short transactions of its
own (results that arrive together share one). A row is `sent` only after the platform accepted it,
so a process killed mid-send leaves just its in-flight rows `sending`: due again on resume, they are
the only messages that can arrive twice. Claimed rows that never reached a worker are given back
when the sender stops (a pause, Ctrl-C, a retry-after), so they count for nothing.

Telegram: 30 messages/s overall by default (`[broadcast] telegram_rate`), up to 1000/s with
`paid_broadcast = true` (each request then says `allow_paid_broadcast`), and one a second per chat
(the `TelegramDeliverer`'s own limiter). A retry-after pauses the whole channel for as long as
Telegram asks. WeChat: the `WeChatDeliverer` sends a customer-service message inside the 48-hour
window and the configured template message outside it; `[broadcast] wechat_rate` paces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.engine.messages import Outgoing
from bot.services import broadcasts as service
from bot.services.outbox import Delivery
from storage.broadcasts import FAILED, QUEUED, SENDING, SENT, UNREACHABLE, Broadcast, Outcome, Recipient

if TYPE_CHECKING:
    from bot.engine.context import BotContext
    from bot.services.outbox import Deliverer
    from storage.jobs import Job

log = logging.getLogger(__name__)

TELEGRAM_RATE = 30.0  # messages a second, Telegram's free limit for a bot
PAID_MAX_RATE = 1000.0  # with paid broadcasts
WECHAT_RATE = 50.0
CONSOLE_RATE = 1000.0
# Slightly under the limit: a late-running event loop sends a few together, and a window the
# platform counts should still hold no more than its limit.
HEADROOM = 0.98
ROW_LEASE = timedelta(minutes=2)  # a row left `sending` this long (its sender died) is due again
MAX_ATTEMPTS = 6
MAX_BACKOFF = 300.0
IDLE = 1.0  # seconds between looks when nothing is due yet
AGAIN_LATER = timedelta(seconds=15)  # the job, when rows wait for a channel this process lacks

# What a run ended with.
FINISHED, PAUSED, CANCELLED, STOPPED, WAITING = "done", "paused", "cancelled", "stopped", "waiting"


@dataclass(frozen=True)
class Limits:
    rate: float  # messages (API requests) a second, overall
    workers: int
    paid: bool = False


def limits_for(settings: Any, channel: str) -> Limits:
    """The channel's pace from `[broadcast]` in the config."""
    config = dict(settings.extra.get("broadcast", {}))
    if channel == "telegram":
        paid = bool(config.get("paid_broadcast", False))
        cap = PAID_MAX_RATE if paid else TELEGRAM_RATE
        rate = min(float(config.get("telegram_rate", cap if paid else TELEGRAM_RATE)), cap)
    elif channel == "wechat":
        paid, rate = False, float(config.get("wechat_rate", WECHAT_RATE))
    else:
        paid, rate = False, CONSOLE_RATE
    rate = max(rate, 0.1)
    # Enough requests in flight to reach the rate at a few hundred milliseconds a request.
    workers = int(config.get("workers", min(max(math.ceil(rate * 0.3), 4), 300)))
    return Limits(rate=rate, workers=workers, paid=paid)


class Pacer:
    """A token bucket holding one token (so never a burst): each request takes the next free slot,
    `cost / rate` seconds after the previous one. What the platform counts is when requests arrive,
    so a request that could not start near its slot (the event loop was busy) takes a fresh one rather
    than go with the others that waited; and the first seconds run at half the rate, while the
    connections are being opened. `hold` stops every request for a while (a retry-after, which
    Telegram asks of the whole bot)."""

    LATE = 0.01  # seconds past its slot a request may still start
    RAMP = 2.0  # seconds from half the rate to all of it

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._held_until = 0.0
        self._began: float | None = None

    def hold(self, seconds: float) -> None:
        self._held_until = max(self._held_until, time.monotonic() + seconds)
        self._next = max(self._next, self._held_until)

    def _spacing(self, now: float, cost: int) -> float:
        if self._began is None:
            self._began = now
        warm = min((now - self._began) / self.RAMP, 1.0)
        return cost * self.interval / (0.5 + 0.5 * warm)

    async def acquire(self, cost: int = 1) -> None:
        while True:
            now = time.monotonic()
            slot = max(now, self._next, self._held_until)
            self._next = slot + self._spacing(now, cost)
            if slot > now:
                await asyncio.sleep(slot - now)
            if self._held_until <= slot and time.monotonic() - slot <= self.LATE:
                return
            # Held while waiting, or woken late: a slot after the others, so the waiters do not all go at once.


@dataclass
class Progress:
    recipients: int = 0
    sent: int = 0
    failed: int = 0
    unreachable: int = 0
    retried: int = 0  # retry-afters (429s) received
    started: float = field(default_factory=time.monotonic)
    sent_this_run: int = 0

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.unreachable

    @property
    def remaining(self) -> int:
        return max(self.recipients - self.done, 0)


class BroadcastSender:
    """Delivers one broadcast from this process with the given deliverers, until nothing is left for
    them, the broadcast is paused or cancelled (here or elsewhere), or `stop` is set."""

    def __init__(
        self,
        app: BotContext,
        broadcast_id: int,
        deliverers: Mapping[str, Deliverer],
        *,
        limits: Mapping[str, Limits] | None = None,
        stop: asyncio.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.app = app
        self.broadcast_id = broadcast_id
        self.deliverers = dict(deliverers)
        self.limits = {ch: (limits or {}).get(ch) or limits_for(app.settings, ch) for ch in self.deliverers}
        self.stop = stop or asyncio.Event()
        self.on_progress = on_progress
        self.progress = Progress()
        self._notices: dict[str, Outgoing] = {}
        self._cost = 1
        self._broadcast: Broadcast | None = None
        self._event: Any = None
        self._image: bytes | None = None
        self.finished: service.DeliveryReport | None = None
        self._in_hand = 0  # rows a worker holds (waiting for its slot, or being delivered)

    # -- setting up --------------------------------------------------------------------------------
    async def _prepare(self) -> Broadcast:
        async with self.app.db.transaction() as tx:
            broadcast = await tx.broadcasts.get(self.broadcast_id)
            if broadcast is None:
                raise service.BroadcastRefused("not_found")
            counts = await tx.broadcasts.counts(self.broadcast_id)
            if broadcast.event_id is not None:
                self._event = await tx.events.get(broadcast.event_id)
            media = await tx.media.get(broadcast.media_id) if broadcast.media_id else None
        if media is not None:
            from bot.services.media import path_of

            path = path_of(self.app.settings.media_path(), media.sha256)
            try:
                self._image = await asyncio.to_thread(path.read_bytes)
            except OSError:  # the text carries the notice; a lost picture is not a reason to stop
                log.warning("broadcast %d: its picture is missing", self.broadcast_id)
        self._cost = 2 if self._image else 1
        p = self.progress
        p.recipients = broadcast.recipients
        p.sent, p.failed, p.unreachable = counts.get(SENT, 0), counts.get(FAILED, 0), counts.get(UNREACHABLE, 0)
        self._broadcast = broadcast
        return broadcast

    def _notice(self, lang: str) -> Outgoing:
        notice = self._notices.get(lang)
        if notice is None:
            assert self._broadcast is not None
            notice = service.notice(self.app, self._broadcast, lang, self._event, image=self._image)
            self._notices[lang] = notice
        return notice

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # -- running -----------------------------------------------------------------------------------
    async def run(self) -> str:
        """Deliver; returns FINISHED, PAUSED, CANCELLED, STOPPED (`stop` was set) or WAITING (rows are
        left for channels this process has no deliverer for)."""
        broadcast = await self._prepare()
        if broadcast.state != SENDING:
            return {service.PAUSED: PAUSED, service.CANCELLED: CANCELLED, service.DONE: FINISHED}.get(
                broadcast.state, STOPPED
            )
        self._report()
        ends = await asyncio.gather(*(self._channel(ch, d) for ch, d in self.deliverers.items()))
        if self.stop.is_set():
            return STOPPED
        async with self.app.db.transaction() as tx:
            self.finished = await service.finish_if_done(self.app, tx, self.broadcast_id)
            current = await tx.broadcasts.get(self.broadcast_id)
        state = current.state if current else service.CANCELLED
        self._report()
        if state == service.DONE:
            return FINISHED
        if state == service.PAUSED or PAUSED in ends:
            return PAUSED
        if state == service.CANCELLED:
            return CANCELLED
        return WAITING

    async def _channel(self, channel: str, deliverer: Deliverer) -> str:
        limits = self.limits[channel]
        pacer = Pacer(limits.rate * HEADROOM)
        queue: asyncio.Queue[Recipient | None] = asyncio.Queue()
        results: asyncio.Queue[Outcome] = asyncio.Queue()
        halt = asyncio.Event()
        batch = int(min(max(limits.workers * 2, limits.rate / 2), 1000))
        recorder = asyncio.create_task(self._recorder(results, halt))
        workers = [
            asyncio.create_task(self._worker(channel, deliverer, pacer, queue, results, halt))
            for _ in range(limits.workers)
        ]
        try:
            end = await self._feed(channel, queue, halt, batch, limits.workers)
        finally:
            halt.set()
            for _ in workers:
                queue.put_nowait(None)
            # Workers finish the message each has in hand; the rest of the queue goes back unsent.
            await asyncio.gather(*workers, return_exceptions=True)
            left = []
            while not queue.empty():
                item = queue.get_nowait()
                if item is not None:
                    left.append(item.member_id)
            await results.join()
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            if left:
                async with self.app.db.transaction() as tx:
                    await tx.broadcasts.release(self.broadcast_id, left, self.app.now())
        return end

    async def _feed(
        self, channel: str, queue: asyncio.Queue[Recipient | None], halt: asyncio.Event, batch: int, workers: int
    ) -> str:
        while not self.stop.is_set():
            if queue.qsize() > max(batch // 2, workers):
                await self._nap(0.05)
                continue
            now = self.app.now()
            async with self.app.db.transaction() as tx:
                rows = await tx.broadcasts.claim(self.broadcast_id, channel, now, batch, ROW_LEASE)
                if not rows:
                    current = await tx.broadcasts.get(self.broadcast_id)
                    due = await tx.broadcasts.next_due(self.broadcast_id, channel)
            if rows:
                for row in rows:
                    queue.put_nowait(row)
                continue
            if current is None or current.state != SENDING:
                return PAUSED if current is not None and current.state == service.PAUSED else CANCELLED
            if due is None:  # no row queued or being sent: all recorded
                return FINISHED
            busy = self._in_hand or not queue.empty()
            wait = 0.05 if busy else min(max((due - now).total_seconds(), 0.05), IDLE)
            await self._nap(wait)
        return STOPPED

    async def _nap(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _worker(
        self,
        channel: str,
        deliverer: Deliverer,
        pacer: Pacer,
        queue: asyncio.Queue[Recipient | None],
        results: asyncio.Queue[Outcome],
        halt: asyncio.Event,
    ) -> None:
        while True:
            row = await queue.get()
            if row is None:
                return
            self._in_hand += 1
            try:
                await pacer.acquire(self._cost)
                if halt.is_set() or self.stop.is_set():
                    queue.put_nowait(row)  # not sent: given back with the rest
                    return
                try:
                    result = await deliverer.deliver(row.user_key, self._notice(row.lang))
                except Exception as e:  # a deliverer bug must not stop the broadcast; the row is tried again
                    log.error("broadcast %d: delivery raised %s", self.broadcast_id, type(e).__name__)
                    result = Delivery("retry", error=type(e).__name__)
            finally:
                self._in_hand -= 1
            if result.status == "retry" and result.retry_after is not None:
                self.progress.retried += 1
                pacer.hold(result.retry_after)  # the whole channel waits, as the platform asks
            results.put_nowait(self._outcome(row, result))

    def _outcome(self, row: Recipient, result: Delivery) -> Outcome:
        error = (result.error or result.status)[:64]
        if result.status == "sent":
            return Outcome(row.member_id, SENT)
        if result.status == "unreachable":
            return Outcome(row.member_id, UNREACHABLE, error)
        if result.status == "failed" or row.attempts >= MAX_ATTEMPTS:
            return Outcome(row.member_id, FAILED, error)
        delay = result.retry_after if result.retry_after is not None else min(2.0**row.attempts, MAX_BACKOFF)
        return Outcome(row.member_id, QUEUED, error, self.app.now() + timedelta(seconds=delay))

    async def _recorder(self, results: asyncio.Queue[Outcome], halt: asyncio.Event) -> None:
        """Writes results as they come: one transaction for all those waiting (one when few come)."""
        while True:
            first = await results.get()
            outcomes = [first]
            while not results.empty():
                outcomes.append(results.get_nowait())
            try:
                await self._write(outcomes)
            except Exception as e:  # unrecorded rows stay `sending` and are sent again on resume
                log.error("broadcast %d: results not recorded: %s", self.broadcast_id, type(e).__name__)
            finally:
                for _ in outcomes:
                    results.task_done()

    async def _write(self, outcomes: list[Outcome]) -> None:
        unreachable = [o for o in outcomes if o.status == UNREACHABLE]
        async with self.app.db.transaction() as tx:
            await tx.broadcasts.record(self.broadcast_id, outcomes, self.app.now())
            if unreachable:
                keys = await self._keys(tx, [o.member_id for o in unreachable])
                for key in keys:
                    await tx.members.set_unreachable(key)
        p = self.progress
        for o in outcomes:
            if o.status == SENT:
                p.sent += 1
                p.sent_this_run += 1
            elif o.status == FAILED:
                p.failed += 1
            elif o.status == UNREACHABLE:
                p.unreachable += 1
        self._report()

    async def _keys(self, tx: Any, member_ids: list[int]) -> list[str]:
        keys = []
        for member_id in member_ids:
            r = await tx.broadcasts.recipient(self.broadcast_id, member_id)
            if r is not None:
                keys.append(r.user_key)
        return keys


# -- the job the bot processes run ------------------------------------------------------------------


async def run_job(app: BotContext, job: Job) -> datetime | None:
    """Job "broadcast_send": deliver with the channels this process runs (`app.deliverers`). Rows of a
    channel it lacks are left for a process that has it (the job comes back in a while)."""
    broadcast_id = int(job.payload["id"])
    deliverers = dict(app.deliverers)
    if not deliverers:
        return app.now() + AGAIN_LATER
    async with contextlib.AsyncExitStack() as stack:
        if "telegram" in deliverers and limits_for(app.settings, "telegram").paid:
            deliverers["telegram"] = await stack.enter_async_context(paid_telegram(app.settings))
        end = await BroadcastSender(app, broadcast_id, deliverers).run()
    log.info("broadcast %d: %s", broadcast_id, end)
    return app.now() + AGAIN_LATER if end == WAITING else None


# -- deliverers built here ---------------------------------------------------------------------------
class _PaidBot:
    """A Bot whose sends say `allow_paid_broadcast`: Telegram then allows up to 1000 messages a second,
    paid for in Stars beyond the free 30."""

    def __init__(self, bot: Any) -> None:
        self._bot = bot

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bot, name)

    async def send_message(self, *args: Any, **kwargs: Any) -> Any:
        return await self._bot.send_message(*args, allow_paid_broadcast=True, **kwargs)

    async def send_photo(self, *args: Any, **kwargs: Any) -> Any:
        return await self._bot.send_photo(*args, allow_paid_broadcast=True, **kwargs)

    async def send_document(self, *args: Any, **kwargs: Any) -> Any:
        return await self._bot.send_document(*args, allow_paid_broadcast=True, **kwargs)


def _aiohttp_request(connections: int, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """python-telegram-bot's requests over aiohttp: its own httpx transport spends about 1.7 ms of CPU
    a request, which caps one process near 500 requests a second, below the paid-broadcast rate."""
    import aiohttp
    from telegram.error import NetworkError, TimedOut
    from telegram.request import BaseRequest

    class AiohttpRequest(BaseRequest):
        def __init__(self) -> None:
            self._session: aiohttp.ClientSession | None = None

        @property
        def read_timeout(self) -> float:
            return timeout

        async def initialize(self) -> None:
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=connections),
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    headers={"User-Agent": self.USER_AGENT},
                )

        async def shutdown(self) -> None:
            if self._session is not None:
                await self._session.close()

        async def do_request(self, url: str, method: str, request_data: Any = None, *_: Any, **__: Any):  # type: ignore[no-untyped-def,override]
            if self._session is None or self._session.closed:
                raise RuntimeError("AiohttpRequest is not initialized")
            body: Any = None
            if request_data is not None:
                files = request_data.multipart_data
                fields = request_data.json_parameters
                if files:
                    body = aiohttp.FormData()
                    for name, value in fields.items():
                        body.add_field(name, value)
                    for name, (filename, content, mime) in files.items():
                        body.add_field(name, content, filename=filename, content_type=mime)
                else:
                    body = fields
            try:
                async with self._session.request(method, url, data=body) as response:
                    return response.status, await response.read()
            except TimeoutError as e:
                raise TimedOut from e
            except aiohttp.ClientError as e:
                raise NetworkError(f"aiohttp.{type(e).__name__}") from e

    return AiohttpRequest()


@contextlib.asynccontextmanager
async def telegram_deliverer(settings: Any, *, paid: bool | None = None):  # type: ignore[no-untyped-def]
    """A `TelegramDeliverer` on a Bot of its own, with connections enough for the broadcast's workers
    and no rate limiter but the sender's."""
    from telegram import Bot

    from bot.handlers.telegram import file_url
    from bot.handlers.telegram_render import Renderer
    from bot.services.telegram_delivery import TelegramDeliverer

    if not settings.telegram_token:
        raise RuntimeError("GIGUNION_TELEGRAM_TOKEN is not set")
    limits = limits_for(settings, "telegram")
    paid = limits.paid if paid is None else paid
    request = _aiohttp_request(limits.workers + 4)
    bot = Bot(
        settings.telegram_token,
        base_url=settings.telegram_api_url,
        base_file_url=file_url(settings.telegram_api_url),
        request=request,
    )
    async with bot:
        yield TelegramDeliverer(Renderer(_PaidBot(bot) if paid else bot))  # type: ignore[arg-type]


def paid_telegram(settings: Any):  # type: ignore[no-untyped-def]
    return telegram_deliverer(settings, paid=True)


@contextlib.asynccontextmanager
async def wechat_deliverer(app: BotContext):  # type: ignore[no-untyped-def]
    import httpx

    from bot.services.wechat_api import WeChatApi
    from bot.services.wechat_deliver import WeChatDeliverer

    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        yield WeChatDeliverer(app, WeChatApi(app, client))
