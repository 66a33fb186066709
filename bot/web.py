"""The ASGI app that `gigunion serve` runs: platform webhooks plus a health check."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app(channel_routes: list[BaseRoute]) -> Starlette:
    """The routes of each configured channel (see `gigunion serve`), and /healthz."""
    return Starlette(routes=[Route("/healthz", healthz), *channel_routes])
