"""Reading what WeChat pushes: refusing unsafe XML, and turning a parsed message into an `Incoming`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from wechatpy.events import ClickEvent, ScanEvent, SubscribeEvent, SubscribeScanEvent, UnsubscribeEvent
from wechatpy.messages import BaseMessage, ImageMessage, LocationMessage, TextMessage, VoiceMessage

from bot.engine.messages import Incoming, Kind, Media, Refusal
from bot.services.media import MediaRefused
from bot.services.wechat_api import MediaTooBig, WeChatApi, WeChatError

CHANNEL = "wechat"
# A menu key is a command word, optionally with its argument: "join", "card", "lang:en".
_MENU_KEY = re.compile(r"([a-z_]{1,32})(?::([A-Za-z0-9_\-]{1,48}))?")


class UnsafeXml(Exception):
    """A DOCTYPE, an entity or an external reference: refused before anything expands it."""


class BadXml(Exception):
    pass


# A markup declaration other than CDATA: a DOCTYPE, an entity, a comment. WeChat's messages carry
# none, and without a DOCTYPE no entity can be declared, let alone expanded.
_DECLARATION = re.compile(r"<!(?!\[CDATA\[)")


def checked_xml(raw: bytes | str) -> str:
    """The message as text, once it is known to hold no DTD, entity or external reference. Anything
    that might is judged by defusedxml, which refuses all three without expanding them; ordinary
    messages skip that second parse, which would otherwise cost more than decrypting them."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise BadXml from None
    if _DECLARATION.search(text):
        try:
            fromstring(text.encode(), forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except DefusedXmlException:
            raise UnsafeXml from None
        except (ParseError, ValueError):
            raise BadXml from None
    return text


# WeChat's answer to a media id it does not have: never valid, or older than its 3 days.
INVALID_MEDIA_ID = 40007


class WeChatFiles:
    """An image a user sent, fetched before its turn from WeChat's temporary media by its MediaId."""

    def __init__(self, api: WeChatApi) -> None:
        self.api = api

    async def fetch(self, media: Media, max_bytes: int) -> bytes:
        try:
            return await self.api.get_media(media.file_id, max_bytes)
        except MediaTooBig:
            raise MediaRefused(Refusal.TOO_BIG) from None
        except WeChatError as e:
            reason = Refusal.EXPIRED if e.errcode == INVALID_MEDIA_ID else Refusal.DOWNLOAD_FAILED
            raise MediaRefused(reason) from None


@dataclass(frozen=True)
class Inbound:
    """What to do with one WeChat message: run a turn, answer with a sentence, or just acknowledge."""

    incoming: Incoming | None = None
    polite: str | None = None  # a locale key answered at once, without a turn
    subscribed: bool | None = None  # True on (re)subscribing, False on unsubscribing


def dedupe_key(msg: BaseMessage) -> str:
    raw = msg._data
    if raw.get("MsgId"):
        return f"msg:{raw['MsgId']}"
    # Events have no MsgId; WeChat retries one with the same sender and CreateTime. The event type
    # keeps a subscribe and a SCAN in the same second apart.
    return f"ev:{msg.source}:{raw.get('CreateTime', '')}:{raw.get('Event', '')}"


def to_inbound(msg: BaseMessage) -> Inbound:
    base = {"channel": CHANNEL, "user_id": msg.source, "dedupe_key": dedupe_key(msg)}
    if isinstance(msg, TextMessage):
        return Inbound(Incoming(kind=Kind.TEXT, text=msg.content or "", **base))
    if isinstance(msg, SubscribeScanEvent | ScanEvent):
        # wechatpy has already taken "qrscene_" off a subscribe's EventKey; a SCAN's key is the scene.
        scene = (msg.scene_id or "").removeprefix("qrscene_")
        start = Incoming(kind=Kind.COMMAND, text="/start", payload=f"join-{scene}" if scene else "", **base)
        return Inbound(start, subscribed=True)
    if isinstance(msg, SubscribeEvent):
        return Inbound(Incoming(kind=Kind.COMMAND, text="/start", **base), subscribed=True)
    if isinstance(msg, UnsubscribeEvent):
        return Inbound(subscribed=False)
    if isinstance(msg, ClickEvent):
        match = _MENU_KEY.fullmatch(msg.key or "")
        if match is None:
            return Inbound(polite="wechat.unsupported")
        command = Incoming(kind=Kind.COMMAND, text=f"/{match.group(1)}", payload=match.group(2) or "", **base)
        return Inbound(command)
    if isinstance(msg, ImageMessage):
        media = Media(file_id=msg.media_id or "", url=msg.image or None, mime_type="image/jpeg")
        return Inbound(Incoming(kind=Kind.PHOTO, media=media, **base))
    if isinstance(msg, LocationMessage):
        try:
            where = (float(msg.location_x), float(msg.location_y))
        except (TypeError, ValueError):
            return Inbound(polite="wechat.unsupported")
        return Inbound(Incoming(kind=Kind.LOCATION, location=where, **base))
    if isinstance(msg, VoiceMessage):
        if msg.recognition and msg.recognition.strip():
            return Inbound(Incoming(kind=Kind.TEXT, text=msg.recognition.strip(), **base))
        return Inbound(polite="wechat.voice_unrecognized")
    if str(msg._data.get("MsgType", "")).lower() == "event":
        # Menu links, template receipts, location reports: nothing to answer.
        return Inbound()
    return Inbound(polite="wechat.unsupported")
