"""The WeChat server API over httpx, with one access token shared by every process through the database.

WeChat gives out one valid token per AppID (a new one retires the old after a few minutes), so a
refresh is single-flight: one task per process under a lock, one process at a time under a short
lease row in `platform_tokens`. A call answered with an expired-token error refreshes once (unless
someone else already did) and is retried once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

import httpx

from bot.engine.context import BotContext
from storage.tokens import Token

log = logging.getLogger(__name__)

# 40001 invalid credential, 40014 invalid access_token, 42001 access_token expired.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
OFFICIAL_API = "https://api.weixin.qq.com/cgi-bin/"
OFFICIAL_SHOWQRCODE = "https://mp.weixin.qq.com/cgi-bin/showqrcode"
# Refresh this long before WeChat's own expiry, so a token never dies in flight.
EXPIRY_MARGIN = timedelta(minutes=5)
LEASE = timedelta(seconds=15)


class WeChatError(Exception):
    """WeChat answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatUnavailable(Exception):
    """The API could not be reached or did not answer with JSON."""


class MediaTooBig(Exception):
    """A media file larger than the caller would take; not read further."""


class WeChatApi:
    def __init__(self, app: BotContext, client: httpx.AsyncClient) -> None:
        s = app.settings
        if not (s.wechat_appid and s.wechat_secret):
            raise ValueError("GIGUNION_WECHAT_APPID and GIGUNION_WECHAT_SECRET are needed to call the WeChat API")
        self.app = app
        self.client = client
        self.base = s.wechat_api_url.rstrip("/") + "/"
        self.appid = s.wechat_appid
        self.secret = s.wechat_secret
        self.token_name = f"wechat:{self.appid}"
        self._lease_name = f"wechat:{self.appid}:refreshing"
        self._owner = secrets.token_hex(8)
        self._lock = asyncio.Lock()
        self._cached: Token | None = None
        self.refreshes = 0

    # -- access token ------------------------------------------------------------------------------
    def _usable(self, token: Token | None, stale: str | None) -> bool:
        return token is not None and token.value != stale and token.expires_at > self.app.now()

    async def access_token(self, stale: str | None = None) -> str:
        """A valid token; `stale` is one WeChat just refused, which is never handed out again."""
        if self._usable(self._cached, stale):
            return self._cached.value  # type: ignore[union-attr]
        async with self._lock:
            for _ in range(40):
                async with self.app.db.transaction() as tx:
                    stored = await tx.tokens.get(self.token_name)
                    if self._usable(stored, stale):
                        self._cached = stored
                        return stored.value  # type: ignore[union-attr]
                    now = self.app.now()
                    if await tx.tokens.take_lease(self._lease_name, self._owner, now, now + LEASE):
                        break
                # Another process is refreshing: its token will be in the database shortly.
                await asyncio.sleep(0.25)
            return await self._refresh()

    async def _refresh(self) -> str:
        try:
            data = await self._get_json(
                "token", {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
            )
            if data.get("errcode"):
                raise WeChatError(int(data["errcode"]), str(data.get("errmsg", "")))
            now = self.app.now()
            expires = now + timedelta(seconds=int(data.get("expires_in", 7200))) - EXPIRY_MARGIN
            token = Token(str(data["access_token"]), max(expires, now + timedelta(seconds=60)))
            async with self.app.db.transaction() as tx:
                await tx.tokens.put(self.token_name, token.value, token.expires_at)
                await tx.tokens.put(self._lease_name, "", datetime.fromtimestamp(0, now.tzinfo))
            self._cached = token
            self.refreshes += 1
            log.info("wechat access token refreshed")
            return token.value
        except Exception:
            async with self.app.db.transaction() as tx:  # let another process try at once
                await tx.tokens.put(self._lease_name, "", datetime.fromtimestamp(0, self.app.now().tzinfo))
            raise

    # -- calls -------------------------------------------------------------------------------------------
    async def _get_json(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self._request("GET", path, params=params)

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.client.request(method, self.base + path, **kwargs)
            return response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise WeChatUnavailable(f"{path}: {type(e).__name__}") from None

    async def call(
        self,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, str] | None = None,
        files: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST to `path` with the access token; raises WeChatError on a non-zero errcode."""
        token = await self.access_token()
        for attempt in (1, 2):
            kwargs: dict[str, Any] = {"params": {**(params or {}), "access_token": token}}
            if files is not None:
                kwargs["files"] = files
            elif body is not None:
                # WeChat shows \\u escapes literally in some APIs: send UTF-8 as it is.
                kwargs["content"] = json.dumps(body, ensure_ascii=False).encode()
                kwargs["headers"] = {"Content-Type": "application/json; charset=utf-8"}
            data = await self._request("POST", path, **kwargs)
            code = int(data.get("errcode", 0) or 0)
            if code in TOKEN_ERRORS and attempt == 1:
                token = await self.access_token(stale=token)
                continue
            if code:
                raise WeChatError(code, str(data.get("errmsg", "")))
            return data
        raise AssertionError("unreachable")

    async def send_custom(self, openid: str, message: dict[str, Any]) -> None:
        await self.call("message/custom/send", {"touser": openid, **message})

    async def upload_image(self, png: bytes) -> str:
        data = await self.call(
            "media/upload", params={"type": "image"}, files={"media": ("card.png", png, "image/png")}
        )
        return str(data["media_id"])

    async def get_media(self, media_id: str, max_bytes: int) -> bytes:
        """A temporary media file's bytes (an image a user sent: WeChat keeps it 3 days). Raises
        WeChatError (40007: unknown or expired media id), WeChatUnavailable, or MediaTooBig."""
        token = await self.access_token()
        for attempt in (1, 2):
            params = {"access_token": token, "media_id": media_id}
            try:
                async with self.client.stream("GET", self.base + "media/get", params=params) as response:
                    kind = response.headers.get("content-type", "")
                    # Errors come back as JSON, labelled text/plain or application/json.
                    if kind.startswith(("text/", "application/json")):
                        data = json.loads(await response.aread())
                        code = int(data.get("errcode", 0) or 0)
                        if code in TOKEN_ERRORS and attempt == 1:
                            token = await self.access_token(stale=token)
                            continue
                        raise WeChatError(code, str(data.get("errmsg", "")))
                    if response.status_code != 200:
                        raise WeChatUnavailable(f"media/get: HTTP {response.status_code}")
                    return await _read_at_most(response, max_bytes)
            except (httpx.HTTPError, ValueError) as e:
                raise WeChatUnavailable(f"media/get: {type(e).__name__}") from None
        raise AssertionError("unreachable")

    async def send_template(self, openid: str, template_id: str, data: dict[str, str], url: str | None) -> None:
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {k: {"value": v} for k, v in data.items()},
        }
        if url:
            body["url"] = url
        await self.call("message/template/send", body)

    async def create_menu(self, menu: dict[str, Any]) -> None:
        await self.call("menu/create", menu)

    async def create_qrcode(self, scene: str, expire_seconds: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"action_info": {"scene": {"scene_str": scene}}}
        if expire_seconds:
            body.update(action_name="QR_STR_SCENE", expire_seconds=expire_seconds)
        else:
            body["action_name"] = "QR_LIMIT_STR_SCENE"
        return await self.call("qrcode/create", body)

    def showqrcode_url(self) -> str:
        configured = self.app.settings.extra.get("wechat", {}).get("showqrcode_url")
        if configured:
            return str(configured)
        # The picture lives on mp.weixin.qq.com, not on the API host; a test or proxy base serves both.
        return OFFICIAL_SHOWQRCODE if self.base == OFFICIAL_API else self.base + "showqrcode"

    async def qrcode_image(self, ticket: str) -> bytes:
        try:
            response = await self.client.get(self.showqrcode_url(), params={"ticket": ticket})
        except httpx.HTTPError as e:
            raise WeChatUnavailable(f"showqrcode: {type(e).__name__}") from None
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith("image/"):
            raise WeChatUnavailable(f"showqrcode: HTTP {response.status_code}")
        return response.content


async def _read_at_most(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise MediaTooBig
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise MediaTooBig
        chunks.append(chunk)
    return b"".join(chunks)


def hashed(openid: str) -> str:
    """An openid as it may appear in logs."""
    return hashlib.sha256(openid.encode()).hexdigest()[:12]


def quiet_http_logs() -> None:
    """httpx logs each request URL at INFO, and WeChat's URLs carry the access token (and the secret)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
