"""The ASGI app that `gigunion serve` runs: platform webhooks plus a health check."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route

from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app(app: BotContext, dispatcher: Dispatcher, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """Routes of each channel whose settings are present are added by the caller (see `bot.cli serve`)."""
    routes: list[BaseRoute] = [Route("/healthz", healthz)]
    routes += extra_routes or []
    return Starlette(routes=routes)
