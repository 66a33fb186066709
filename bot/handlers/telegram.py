"""The Telegram channel (python-telegram-bot v22): long polling for `gigunion telegram`, the webhook
route for `gigunion serve`, and the outbox sender for messages sent later.

Updates of different chats are handled concurrently; one chat's updates are handled and answered
in the order they came, so a quick second tap never overtakes the first one's answer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager, suppress
from typing import Any

from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import (
    Bot,
    BotCommand,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatType, UpdateType
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, TypeHandler

from bot.config import Settings
from bot.engine.context import BotContext
from bot.engine.dispatcher import GLOBAL_COMMANDS, Dispatcher
from bot.engine.locks import UserLocks
from bot.engine.messages import Outgoing
from bot.handlers.telegram_incoming import CHANNEL, TelegramFiles, to_incoming
from bot.handlers.telegram_render import Renderer
from bot.locale import normalize_lang
from bot.runtime import running_bot, settle_heap
from bot.services.outbox import OutboxSender, deliver_privately, enqueue
from bot.services.telegram_delivery import TelegramDeliverer, classify
from bot.validation import source_code

log = logging.getLogger(__name__)
# httpx logs each request URL at INFO, and a Bot API URL holds the bot's token; PTB logs whole
# updates, with what people wrote, at DEBUG.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("telegram").setLevel(logging.INFO)
# With no retries of its own it logs every 429 as an error with a traceback; the outbox retries it.
logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = [UpdateType.MESSAGE, UpdateType.CALLBACK_QUERY]
# The command menu, in this order; a command shows when its flow exists and the locale describes it.
MENU_COMMANDS = ("menu", "join", "card", "claim", "myclaims", "mydata", "human", "cancel", "help", "lang")


def file_url(api_url: str) -> str:
    """The file download base beside an API base: ".../bot" -> ".../file/bot"."""
    head, sep, _ = api_url.rpartition("/bot")
    return f"{head}/file/bot" if sep else api_url.rstrip("/") + "/file/bot"


def make_bot(settings: Settings) -> Bot:
    if not settings.telegram_token:
        raise RuntimeError("GIGUNION_TELEGRAM_TOKEN is not set")
    return Bot(
        settings.telegram_token, base_url=settings.telegram_api_url, base_file_url=file_url(settings.telegram_api_url)
    )


def build_application(settings: Settings, *, polling: bool) -> Application:
    if not settings.telegram_token:
        raise RuntimeError("GIGUNION_TELEGRAM_TOKEN is not set")
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token)
        .base_url(settings.telegram_api_url)
        .base_file_url(file_url(settings.telegram_api_url))
        .rate_limiter(AIORateLimiter())  # 30 messages/s overall, 20/min per group
        .concurrent_updates(True)
    )
    if not polling:
        builder = builder.updater(None)
    return builder.build()


class _Recent:
    """A bounded set of the latest keys seen in this process."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def add(self, key: Hashable) -> None:
        self._keys[key] = None
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)


class TelegramChannel:
    def __init__(self, app: BotContext, dispatcher: Dispatcher, application: Application) -> None:
        self.app = app
        self.dispatcher = dispatcher
        self.application = application
        self.bot: Bot = application.bot
        self.renderer = Renderer(self.bot)
        self.deliverer = TelegramDeliverer(self.renderer)
        app.deliverers[CHANNEL] = self.deliverer  # so jobs this process runs (broadcasts) can deliver
        app.media_fetchers[CHANNEL] = TelegramFiles(self.bot)  # files riders send, fetched before their turn
        self._chat_locks = UserLocks()
        self._done = _Recent()  # update ids answered in this process
        self._pressed = _Recent()  # (chat, message) whose buttons were already used
        application.add_handler(TypeHandler(Update, self.on_update))

    # -- updates -----------------------------------------------------------------------------------
    async def on_update(self, update: Update, _context: Any) -> None:
        chat = update.effective_chat
        if chat is None:
            return
        # Taken first thing: the lock queues waiters in arrival order, which keeps a chat in order.
        async with self._chat_locks.hold(str(chat.id)):
            try:
                await self._handle(update, chat)
            except Exception as e:  # one bad update must not stop the others
                log.error("telegram update %s not handled: %s", update.update_id, type(e).__name__)

    async def _handle(self, update: Update, chat: Chat) -> None:
        query = update.callback_query
        if query is not None:
            await self._quietly(query.answer())  # stops the spinner on the pressed button
        if chat.type != ChatType.PRIVATE:
            if query is None and update.effective_message is not None:
                await self._private_only(update, chat.id)
            return
        if update.update_id in self._done:
            log.info("telegram update %s already answered", update.update_id)
            return
        if query is not None and not self._first_press(query):
            log.info("telegram update %s: second tap on one message ignored", update.update_id)
            self._done.add(update.update_id)
            return
        incoming = to_incoming(update)
        if incoming is None:
            return
        log.info("telegram update %s: %s", update.update_id, incoming.kind)
        outs = await self.dispatcher.handle(incoming)
        self._done.add(update.update_id)
        if query is not None:
            await self._quietly(self.renderer.settle_pressed(query, self._mark_pressed))
        await self.reply(incoming.user_key, chat.id, outs)

    def _first_press(self, query: CallbackQuery) -> bool:
        msg = query.message
        if not isinstance(msg, Message):
            return True
        key = (msg.chat_id, msg.message_id)
        if key in self._pressed:
            return False
        self._pressed.add(key)
        return True

    def _mark_pressed(self, text: str, label: str) -> str:
        return self.app.locale.text(self.app.profile.default_language, "telegram.pressed", text=text, label=label)

    async def reply(self, user_key: str, chat_id: int, outs: list[Outgoing]) -> None:
        """Send the answer now; what cannot be sent yet goes to the outbox, so nothing is lost."""
        for i, out in enumerate(outs):
            try:
                await self.renderer.send(chat_id, out)
            except TelegramError as e:
                result = classify(e)
                log.warning("telegram reply not sent: %s -> %s", result.error, result.status)
                if result.status == "unreachable":
                    async with self.app.db.transaction() as tx:
                        await tx.members.set_unreachable(user_key)
                    return
                if result.status == "retry":
                    rest = outs[i:]
                    deliver_privately(self.deliverer, user_key, [o for o in rest if o.private], result.retry_after)
                    async with self.app.db.transaction() as tx:
                        for later in rest:
                            if not later.private:
                                await enqueue(tx, user_key, later, self.app.now())
                    return

    async def _private_only(self, update: Update, chat_id: int) -> None:
        user, msg = update.effective_user, update.effective_message
        langs = self.app.locale.languages
        lang = normalize_lang(user.language_code if user else None, langs) or self.app.profile.default_language
        text = self.app.locale.text
        button = InlineKeyboardButton(text(lang, "telegram.open_private"), url=f"https://t.me/{self.bot.username}")
        await self._quietly(
            self.bot.send_message(
                chat_id,
                text(lang, "telegram.private_only"),
                reply_markup=InlineKeyboardMarkup([[button]]),
                reply_parameters=ReplyParameters(msg.message_id, allow_sending_without_reply=True) if msg else None,
            )
        )

    @staticmethod
    async def _quietly(call: Any) -> None:
        try:
            await call
        except TelegramError as e:
            log.info("telegram call not done: %s", type(e).__name__)

    # -- webhook -----------------------------------------------------------------------------------
    async def webhook(self, request: HttpRequest) -> Response:
        secret = self.app.settings.telegram_webhook_secret
        given = request.headers.get(SECRET_HEADER)
        if not secret or given is None or not hmac.compare_digest(given.encode(), secret.encode()):
            return Response(status_code=403)
        try:
            update = Update.de_json(await request.json(), self.bot)
        except Exception:
            return Response(status_code=400)
        # Answered once handled: were this process to die first, Telegram sends the update again.
        await self.application.process_update(update)
        return Response(status_code=200)

    # -- start ---------------------------------------------------------------------------------------
    async def set_commands(self) -> None:
        locale, default = self.app.locale, self.app.profile.default_language
        have = {c for f in self.app.flows.values() for c in f.commands} | set(GLOBAL_COMMANDS)
        for lang in locale.languages:
            keys = locale.keys(lang)
            commands = [
                BotCommand(w, locale.text(lang, f"telegram.cmd_{w}"))
                for w in MENU_COMMANDS
                if w in have and f"telegram.cmd_{w}" in keys
            ]
            code = None if lang == default else lang.split("_")[0]
            await self._quietly(self.bot.set_my_commands(commands, language_code=code))


async def _keep_sending(sender: OutboxSender, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await sender.run_forever(stop)
        except Exception as e:  # a database hiccup must not end delivery for the process's life
            log.error("telegram outbox sender: %s", type(e).__name__)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)


@asynccontextmanager
async def running_channel(app: BotContext, dispatcher: Dispatcher, *, polling: bool) -> AsyncIterator[TelegramChannel]:
    application = build_application(app.settings, polling=polling)
    channel = TelegramChannel(app, dispatcher, application)
    stop = asyncio.Event()
    async with application:  # initialize (getMe) ... shutdown
        await channel.set_commands()
        await application.start()
        sender = asyncio.create_task(_keep_sending(OutboxSender(app, channel.deliverer), stop))
        try:
            yield channel
        finally:
            stop.set()
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            await application.stop()  # lets updates being handled finish
            await sender


@asynccontextmanager
async def webhook_channel(app: BotContext, dispatcher: Dispatcher) -> AsyncIterator[list[BaseRoute]]:
    """For `gigunion serve`: yields the webhook route while the bot and its outbox sender run."""
    if not app.settings.telegram_webhook_secret:
        log.error("GIGUNION_TELEGRAM_WEBHOOK_SECRET is not set: the Telegram webhook refuses every request")
    async with running_channel(app, dispatcher, polling=False) as channel:
        yield [Route(WEBHOOK_PATH, channel.webhook, methods=["POST"])]


async def run_polling(settings: Settings) -> None:
    """`gigunion telegram`: long polling until SIGTERM or Ctrl-C."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_bot(settings) as (app, dispatcher), running_channel(app, dispatcher, polling=True) as ch:
            await ch.application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)  # type: ignore[union-attr]
            settle_heap()
            log.info("telegram: polling as @%s", ch.bot.username)
            await stop.wait()
            log.info("telegram: stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


# -- command-line helpers ------------------------------------------------------------------------------
async def set_webhook(settings: Settings, url: str) -> None:
    if not settings.telegram_webhook_secret:
        raise RuntimeError("set GIGUNION_TELEGRAM_WEBHOOK_SECRET first: Telegram sends it with every update")
    async with make_bot(settings) as bot:
        await bot.set_webhook(url, secret_token=settings.telegram_webhook_secret, allowed_updates=ALLOWED_UPDATES)


async def join_link(settings: Settings, source: str) -> str:
    """The deep link a join QR code opens: t.me/<bot>?start=join-<source>."""
    if source_code(source) is None:
        raise ValueError("a source is 1-48 letters, digits, '-' or '_', e.g. station-12")
    async with make_bot(settings) as bot:
        return f"https://t.me/{bot.username}?start=join-{source}"


async def fetch_file(bot: Bot, file_id: str) -> bytes:
    """A photo's or document's bytes, fetched only when a flow needs them."""
    file = await bot.get_file(file_id)
    return bytes(await file.download_as_bytearray())
