"""Playing WeChat's side of the callback: signed, encrypted pushes to `/wechat` over real HTTP, and
the bot's encrypted answers decrypted and read back."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import xmltodict
from wechatpy.crypto import PrpCrypto, WeChatCrypto, _get_signature
from wechatpy.utils import WeChatSigner

from bot.config import Settings
from bot.handlers.wechat import wechat_channel
from bot.runtime import running_bot
from bot.web import create_app
from tests.fakes.wechat_api import APPID, SECRET, serving

TOKEN = "gigunion-test-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_union_account"

_msg_ids = itertools.count(7_000_000_000_000_000_001)
_nonces = itertools.count(1)
# CreateTime, unique per message: WeChat tells events apart by sender and CreateTime.
_times = itertools.count(int(time.time()))


def wechat_settings(make_settings, api_url: str, **changes: Any) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings(
        wechat_token=TOKEN,
        wechat_aes_key=AES_KEY,
        wechat_appid=APPID,
        wechat_secret=SECRET,
        wechat_api_url=api_url,
        **changes,
    )


def plain_signature(token: str, timestamp: str, nonce: str) -> str:
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    return signer.signature


def text_xml(openid: str, content: str, msg_id: int | None = None) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{next(_times)}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id or next(_msg_ids)}</MsgId></xml>"
    )


def event_xml(openid: str, event: str, key: str | None = None, create_time: int | None = None) -> str:
    key_xml = f"<EventKey><![CDATA[{key}]]></EventKey>" if key is not None else ""
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{create_time or next(_times)}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>{key_xml}</xml>"
    )


def message_xml(openid: str, msg_type: str, fields: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{next(_times)}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{fields}"
        f"<MsgId>{next(_msg_ids)}</MsgId></xml>"
    )


@dataclass
class Answer:
    status: int
    raw: str
    content: str | None = None  # the decrypted text reply; None for "success" or a refusal
    to_user: str | None = None

    @property
    def is_success(self) -> bool:
        return self.status == 200 and self.raw == "success"


class WeChatPush:
    """Sends what WeChat's servers would send for one account."""

    def __init__(self, client: httpx.AsyncClient, *, token: str = TOKEN, aes_key: str = AES_KEY, appid: str = APPID):
        self.client = client
        self.token = token
        self.appid = appid
        self.crypto = WeChatCrypto(token, aes_key, appid)
        self.key = self.crypto.key

    def encrypted_request(self, inner_xml: str, *, appid: str | None = None) -> tuple[dict[str, str], bytes]:
        timestamp, nonce = str(int(time.time())), f"n{next(_nonces)}"
        encrypt = PrpCrypto(self.key).encrypt(inner_xml, appid or self.appid).decode()
        params = {
            "signature": plain_signature(self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": "o-not-read",
            "encrypt_type": "aes",
            "msg_signature": _get_signature(self.token, timestamp, nonce, encrypt),
        }
        body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return params, body.encode()

    def plain_request(self, inner_xml: str | bytes) -> tuple[dict[str, str], bytes]:
        timestamp, nonce = str(int(time.time())), f"n{next(_nonces)}"
        params = {"signature": plain_signature(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        return params, inner_xml if isinstance(inner_xml, bytes) else inner_xml.encode()

    async def send(self, params: dict[str, str], body: bytes) -> Answer:
        response = await self.client.post("/wechat", params=params, content=body)
        answer = Answer(response.status_code, response.text)
        if response.status_code != 200 or response.text == "success":
            return answer
        if params.get("encrypt_type") == "aes":
            outer = xmltodict.parse(response.text)["xml"]
            signed = (outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
            inner = self.crypto.decrypt_message(response.text, *signed)
        else:
            inner = response.text
        reply = xmltodict.parse(inner)["xml"]
        assert reply["MsgType"] == "text"
        answer.content, answer.to_user = reply["Content"], reply["ToUserName"]
        return answer

    async def push(self, inner_xml: str, *, safe: bool = True) -> Answer:
        return await self.send(*(self.encrypted_request(inner_xml) if safe else self.plain_request(inner_xml)))


@asynccontextmanager
async def wechat_bot(settings: Settings, *, wrap=None, deadline: float = 4.0) -> AsyncIterator[tuple[Any, WeChatPush]]:  # type: ignore[no-untyped-def]
    """The `gigunion serve` app with the WeChat channel, on uvicorn at 127.0.0.1; yields (BotContext,
    WeChatPush). `wrap` may replace the dispatcher (to make turns slow, or count them)."""
    async with running_bot(settings) as (app, dispatcher):
        dispatcher = wrap(dispatcher) if wrap else dispatcher
        async with wechat_channel(app, dispatcher, deadline=deadline) as routes:
            web = create_app(routes)
            async with serving(web) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
                yield app, WeChatPush(client)
