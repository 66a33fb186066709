"""Delivering outbox messages on WeChat: customer-service messages inside the 48-hour window that
opens when a user writes, a template message outside it (where the union configured one)."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from bot.engine.context import BotContext
from bot.engine.locks import UserLocks
from bot.engine.messages import Outgoing
from bot.services.outbox import SENT, Delivery
from bot.services.wechat_api import WeChatApi, WeChatError, WeChatUnavailable, hashed
from bot.services.wechat_render import render

log = logging.getLogger(__name__)

OUTSIDE_WINDOW = frozenset({45015, 45047})  # no reply window, or its message quota is used up
GONE = frozenset({43004, 40003, 43019})  # unsubscribed, not a user of this account, blocked us
# Quotas: 45009 daily API limit, 45011 per-minute limit, -1 "system busy".
RETRY_AFTER = {45009: 3600.0, 45011: 60.0, -1: 5.0}


class WeChatDeliverer:
    channel = "wechat"

    def __init__(self, app: BotContext, api: WeChatApi) -> None:
        self.app = app
        self.api = api
        config = app.settings.extra.get("wechat", {})
        self.msgmenu = bool(config.get("msgmenu", False))
        self.templates: dict[str, Any] = dict(config.get("templates", {}))
        self._locks = UserLocks()
        # Parts already sent of a message that failed half-way: a retry sends only the rest.
        self._progress: dict[str, int] = {}

    async def deliver(self, user_key: str, message: Outgoing) -> Delivery:
        openid = user_key.partition(":")[2]
        # One user's messages go out one at a time, in the order the sender started them.
        async with self._locks.hold(openid):
            try:
                await self._send(openid, message)
            except WeChatError as e:
                return await self._failed(openid, message, e)
            except WeChatUnavailable as e:
                return Delivery("retry", error=str(e))
        return SENT

    async def _send(self, openid: str, message: Outgoing) -> None:
        locale = self.app.locale
        lang = message.lang or self.app.profile.default_language
        rendered = render(message, locale, lang, msgmenu=self.msgmenu)
        parts: list[dict[str, Any]] = [{"msgtype": "text", "text": {"content": t}} for t in rendered.texts]
        if rendered.menu:
            parts.append(rendered.menu)
        key = f"{openid}:{hashlib.sha256(repr(message).encode()).hexdigest()[:16]}"
        start = self._progress.get(key, 0)
        for i, part in enumerate(parts[start:], start):
            self._progress[key] = i
            await self.api.send_custom(openid, part)
        self._progress.pop(key, None)
        if rendered.image:
            await self._send_image(openid, rendered.image)

    async def _send_image(self, openid: str, png: bytes) -> None:
        # The text already carries everything the picture shows; a failed upload costs only the picture.
        try:
            media_id = await self.api.upload_image(png)
            await self.api.send_custom(openid, {"msgtype": "image", "image": {"media_id": media_id}})
        except (WeChatError, WeChatUnavailable) as e:
            log.warning("wechat image not sent to %s: %s", hashed(openid), type(e).__name__)

    async def _failed(self, openid: str, message: Outgoing, error: WeChatError) -> Delivery:
        code = error.errcode
        if code in OUTSIDE_WINDOW:
            return await self._by_template(openid, message, error)
        if code in GONE:
            return Delivery("unreachable", error=f"errcode {code}")
        if code in RETRY_AFTER:
            return Delivery("retry", retry_after=RETRY_AFTER[code], error=f"errcode {code}")
        log.warning("wechat message to %s failed: errcode %s", hashed(openid), code)
        return Delivery("failed", error=f"errcode {code}")

    async def _by_template(self, openid: str, message: Outgoing, error: WeChatError) -> Delivery:
        spec = self.templates.get("notice")
        if not spec:
            return Delivery("failed", error=f"errcode {error.errcode}: outside the reply window, no template")
        if isinstance(spec, str):
            spec = {"id": spec}
        field = str(spec.get("field", "content"))
        limit = int(spec.get("max_chars", 200))
        text = message.text if len(message.text) <= limit else message.text[: limit - 1] + "…"
        data = {str(k): str(v) for k, v in dict(spec.get("data", {})).items()}
        data[field] = text
        try:
            await self.api.send_template(openid, str(spec["id"]), data, spec.get("url"))
        except WeChatError as e:
            if e.errcode in GONE:
                return Delivery("unreachable", error=f"errcode {e.errcode}")
            if e.errcode in RETRY_AFTER:
                return Delivery("retry", retry_after=RETRY_AFTER[e.errcode], error=f"errcode {e.errcode}")
            return Delivery("failed", error=f"template errcode {e.errcode}")
        except WeChatUnavailable as e:
            return Delivery("retry", error=str(e))
        return SENT
