"""Running the Telegram channel against the fake Bot API in tests: by webhook (each update posted
over HTTP to the bot's own ASGI app under uvicorn, answered once handled) or by long polling."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn

from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.handlers.telegram import ALLOWED_UPDATES, SECRET_HEADER, TelegramChannel, running_channel, webhook_channel
from bot.web import create_app
from tests.fakes.telegram_api import FakeTelegram

SECRET = "webhook-secret-for-tests"


@asynccontextmanager
async def fake_api() -> AsyncIterator[FakeTelegram]:
    fake = await FakeTelegram().start()
    try:
        yield fake
    finally:
        await fake.stop()


class WebhookClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, update: dict, secret: str | None = SECRET) -> httpx.Response:
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        return await self.http.post("/telegram/webhook", json=update, headers=headers)


@asynccontextmanager
async def webhook_bot(app: BotContext, dispatcher: Dispatcher) -> AsyncIterator[WebhookClient]:
    """`gigunion serve` in-process: the webhook route and /healthz under uvicorn on 127.0.0.1."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    async with webhook_channel(app, dispatcher) as routes:
        server = uvicorn.Server(uvicorn.Config(create_app(routes), log_level="warning"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                yield WebhookClient(http)
        finally:
            server.should_exit = True
            await task
            sock.close()


@asynccontextmanager
async def polling_bot(app: BotContext, dispatcher: Dispatcher) -> AsyncIterator[TelegramChannel]:
    async with running_channel(app, dispatcher, polling=True) as channel:
        await channel.application.updater.start_polling(allowed_updates=ALLOWED_UPDATES, poll_interval=0)  # type: ignore[union-attr]
        yield channel
