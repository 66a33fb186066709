"""`gigunion serve`: the web app for the channels that take webhooks."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import run, settings


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Run the web app: the Telegram webhook and WeChat callback (for those configured), and /healthz."""
    import signal
    from contextlib import AsyncExitStack

    import uvicorn

    from bot.runtime import running_bot, settle_heap
    from bot.web import create_app

    async def go() -> None:
        s = settings()
        async with running_bot(s) as (bot, dispatcher), AsyncExitStack() as stack:
            routes = []
            # Each channel is an async context: it starts its clients and outbox sender and yields
            # its routes; leaving it stops them.
            if s.telegram_token:
                from bot.handlers.telegram import webhook_channel

                routes += await stack.enter_async_context(webhook_channel(bot, dispatcher))
            if s.wechat_token:
                from bot.handlers.wechat import wechat_channel

                routes += await stack.enter_async_context(wechat_channel(bot, dispatcher))
            web = create_app(routes)
            # uvicorn re-raises the SIGTERM it caught once it has stopped; with the default handler that
            # would kill the process before the channels and the database are closed below.
            signal.signal(signal.SIGTERM, lambda *_: None)
            settle_heap()
            await uvicorn.Server(uvicorn.Config(web, host=host, port=port, log_level="warning")).serve()

    run(go())
