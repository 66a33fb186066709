"""The WeChat Official Account (服务号) channel: the `/wechat` callback, in plain and safe (AES) mode,
and the sender that delivers customer-service messages from the outbox.

A request is refused before anything is processed when it is too big (413), not signed with our
token or signed too long ago (403), carries XML with a DTD or entities (400), or was encrypted for another AppID (403).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import create_reply
from wechatpy.utils import check_signature

from bot.engine.context import BotContext
from bot.engine.dispatcher import Dispatcher
from bot.engine.messages import Outgoing
from bot.handlers.wechat_inbound import CHANNEL, BadXml, UnsafeXml, WeChatFiles, checked_xml, to_inbound
from bot.handlers.wechat_turns import HANDED_OFF, Turns
from bot.services.outbox import OutboxSender, deliver_privately, enqueue
from bot.services.wechat_admin import configured_menu
from bot.services.wechat_api import WeChatApi, quiet_http_logs
from bot.services.wechat_deliver import WeChatDeliverer
from bot.services.wechat_render import cdata_safe, render

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
# How far a request's signed timestamp may be from our clock. WeChat retries within seconds; a request
# replayed later than this is refused even after its dedupe marker has been forgotten.
MAX_SKEW = 300
SUCCESS = "success"  # what WeChat takes as "received, no passive reply"


class _Forbidden(Exception):
    pass


class WeChatCallback:
    def __init__(self, app: BotContext, turns: Turns) -> None:
        s = app.settings
        if not s.wechat_token:
            raise ValueError("GIGUNION_WECHAT_TOKEN is not set")
        self.app = app
        self.turns = turns
        self.token = s.wechat_token
        self.crypto = (
            WeChatCrypto(s.wechat_token, s.wechat_aes_key, s.wechat_appid)
            if s.wechat_aes_key and s.wechat_appid
            else None
        )

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":
            # The server-URL check in the WeChat console: plain signature in every mode.
            if not self._signed(request):
                return PlainTextResponse("forbidden", status_code=403)
            return PlainTextResponse(request.query_params.get("echostr", ""))
        return await self._receive(request)

    def _signed(self, request: Request) -> bool:
        q = request.query_params
        try:
            check_signature(self.token, q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", ""))
        except InvalidSignatureException:
            return False
        return True

    def _fresh(self, q: Any) -> bool:
        stamp = q.get("timestamp", "")
        return stamp.isdigit() and abs(self.app.now().timestamp() - int(stamp)) <= MAX_SKEW

    async def _receive(self, request: Request) -> Response:
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_BODY:
            return PlainTextResponse("too large", status_code=413)
        q = request.query_params
        safe = q.get("encrypt_type", "raw") == "aes"
        if (safe and self.crypto is None) or (not safe and not self._signed(request)) or not self._fresh(q):
            return PlainTextResponse("forbidden", status_code=403)
        body = await _read_limited(request, MAX_BODY)
        if body is None:
            return PlainTextResponse("too large", status_code=413)
        try:
            xml = self._decrypt(body, request) if safe else _plain(body)
            msg = parse_message(xml)
            if not msg.source:
                raise BadXml
        except _Forbidden:
            return PlainTextResponse("forbidden", status_code=403)
        except UnsafeXml:
            log.warning("wechat: refused XML with a DTD or entities")
            return PlainTextResponse("bad request", status_code=400)
        except Exception:  # BadXml, or anything wechatpy's parser raises on a malformed message
            return PlainTextResponse("bad request", status_code=400)
        text = await self._answer(msg)
        if not text:
            return PlainTextResponse(SUCCESS)
        reply = create_reply(cdata_safe(text), msg, render=True)
        if safe:
            reply = self.crypto.encrypt_message(reply, q.get("nonce", ""), q.get("timestamp", ""))  # type: ignore[union-attr]
        return Response(reply, media_type="application/xml")

    def _decrypt(self, body: bytes, request: Request) -> str:
        q = request.query_params
        try:
            xml = self.crypto.decrypt_message(  # type: ignore[union-attr]
                checked_xml(body), q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", "")
            )
        except (InvalidSignatureException, InvalidAppIdException):
            raise _Forbidden from None
        except (UnsafeXml, BadXml):
            raise
        except Exception:  # no Encrypt, not base64, bad padding, not UTF-8: not something WeChat sent
            raise BadXml from None
        return checked_xml(xml)

    async def _answer(self, msg: Any) -> str:
        inbound = to_inbound(msg)
        # Not who sent it, even hashed: the adapter cannot tell an anonymous complaint's turn from others.
        log.debug("wechat %s", msg._data.get("MsgType"))
        if inbound.subscribed is not None:
            async with self.app.db.transaction() as tx:
                await tx.members.set_unreachable(f"wechat:{msg.source}", not inbound.subscribed)
        if inbound.incoming is not None:
            return await self.turns.answer(inbound.incoming)
        if inbound.polite:
            return self.app.locale.text(await self._lang(msg.source), inbound.polite)
        return HANDED_OFF

    async def _lang(self, openid: str) -> str:
        async with self.app.db.transaction() as tx:
            session = await tx.sessions.get(f"wechat:{openid}")
        if session and session.lang in self.app.locale.languages:
            return session.lang
        return self.app.profile.default_language


def _plain(body: bytes) -> str:
    return checked_xml(body)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` (a chunked body has no Content-Length to check)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def passive_split(app: BotContext):  # type: ignore[no-untyped-def]
    """The first piece of a turn's reply goes back in the HTTP answer; the rest (more text, the card
    picture, further messages) as customer-service messages."""

    def split(outs: list[Outgoing]) -> tuple[str, list[Outgoing]]:
        if not outs:  # a repeat whose stored answer has been forgotten: nothing to say twice
            return HANDED_OFF, []
        first, *others = outs
        rendered = render(first, app.locale, first.lang or app.profile.default_language)
        if not rendered.texts:
            return HANDED_OFF, outs
        rest = rendered.texts[1:]
        if rest or rendered.image:
            more = Outgoing(text="\n\n".join(rest), image=rendered.image, lang=first.lang, private=first.private)
            others.insert(0, more)
        return rendered.texts[0], others

    return split


async def _send_loop(sender: OutboxSender, stop: asyncio.Event, wake: asyncio.Event, idle: float = 1.0) -> None:
    while not stop.is_set():
        wake.clear()
        try:
            tried = await sender.run_once()
        except Exception as e:  # a database hiccup must not end delivery for good
            log.error("wechat outbox round failed: %s", type(e).__name__)
            tried = 0
        if not tried:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), idle)


@contextlib.asynccontextmanager
async def wechat_channel(
    app: BotContext, dispatcher: Dispatcher, *, deadline: float | None = None
) -> AsyncIterator[list[BaseRoute]]:
    """Start the WeChat channel (API client, customer-service sender) and yield its routes."""
    settings = app.settings
    config = settings.extra.get("wechat", {})
    deadline = float(config.get("reply_deadline", 4.0)) if deadline is None else deadline
    quiet_http_logs()
    stop, wake = asyncio.Event(), asyncio.Event()

    async def later(user_key: str, outs: list[Outgoing]) -> None:
        queued = [out for out in outs if not out.private]
        if len(queued) < len(outs):
            deliver_privately(app.deliverers.get(CHANNEL), user_key, [out for out in outs if out.private])
        if queued:
            async with app.db.transaction() as tx:
                for out in queued:
                    await enqueue(tx, user_key, out, app.now())
            wake.set()

    try:  # what the account's menu leaves out is said at start-up, not found by a rider
        configured_menu(app)
    except ValueError as e:
        log.warning("wechat menu: %s", e)
    turns = Turns(dispatcher, passive_split(app), later, deadline=deadline)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        sender_task = None
        if settings.wechat_appid and settings.wechat_secret:
            api = WeChatApi(app, client)
            app.media_fetchers[CHANNEL] = WeChatFiles(api)  # images users send, fetched before their turn
            deliverer = WeChatDeliverer(app, api)
            app.deliverers[CHANNEL] = deliverer  # so jobs this process runs (broadcasts) can deliver
            sender = OutboxSender(app, deliverer)
            sender_task = asyncio.create_task(_send_loop(sender, stop, wake))
        else:
            log.warning("wechat: no AppID/AppSecret, so customer-service messages wait in the outbox")
        try:
            yield [Route("/wechat", WeChatCallback(app, turns).handle, methods=["GET", "POST"])]
        finally:
            await turns.drain()
            stop.set()
            wake.set()
            if sender_task is not None:
                await sender_task
