"""A fake Telegram Bot API server on 127.0.0.1 for tests: it serves queued updates to getUpdates,
answers the methods the bot uses, records every request, and fails on demand (429, 403, 500…).

It also keeps the messages the bot sent, as Telegram would, so a test can press their buttons.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "123456789:TEST-token_for-the-fake"
BOT_ID = 123456789
BOT_USERNAME = "gigunion_test_bot"

_JSON_FIELDS = {
    "reply_markup",
    "commands",
    "allowed_updates",
    "scope",
    "reply_parameters",
    "link_preview_options",
    "entities",
    "caption_entities",
}
_INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout", "cache_time", "max_connections"}
_ERRORS = {
    400: "Bad Request: message is not modified",
    403: "Forbidden: bot was blocked by the user",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
_SENDS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
# What Telegram answers to an edit it will not make, word for word.
CANT_EDIT = "Bad Request: message can't be edited"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same "
    "as a message content and reply markup of the current message"
)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    status: int = 200


class _Refused(Exception):
    """A method answered with a 400, as Telegram refuses it."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass
class _Failure:
    status: int
    retry_after: int | None = None
    description: str | None = None


def user_json(user_id: int, first_name: str = "小李", last_name: str | None = None, lang: str = "zh-hans") -> dict:
    user = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": lang}
    if last_name:
        user["last_name"] = last_name
    return user


class FakeTelegram:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {}
        self.messages: dict[tuple[int, int], dict] = {}  # (chat id, message id) -> message as sent/edited
        # Sent with a reply keyboard, its removal or ForceReply: Telegram never lets these be edited.
        self._uneditable: set[tuple[int, int]] = set()
        self._updates: list[dict] = []
        self._failures: dict[str, deque[_Failure]] = {}
        self._changed = asyncio.Condition()
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._user_message_ids = itertools.count(50_000)
        self._query_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Limits as Telegram enforces them, off unless a test calls `enforce` (broadcast tests).
        self.rate: float | None = None
        self.per_chat: float | None = None
        self.random_429 = 0.0
        self.retry_after = 1
        self.blocked: set[int] = set()  # chats whose user blocked the bot: every send answers 403
        self.delivered: Counter[int] = Counter()  # messages accepted per chat
        self.attempted_at: list[float] = []  # monotonic time of every send request, refused or not
        self.over_limit = 0  # sends refused because they broke `rate` or `per_chat`
        self._random = random.Random(0)
        self._window: deque[float] = deque()
        self._chat_last: dict[int, float] = {}

    # -- running -----------------------------------------------------------------------------------
    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # -- scripting ---------------------------------------------------------------------------------
    def fail(self, method: str, status: int, times: int = 1, retry_after: int | None = None) -> None:
        """The next `times` calls of `method` fail with this HTTP status, as Telegram answers it."""
        queue = self._failures.setdefault(method, deque())
        queue.extend(_Failure(status, retry_after) for _ in range(times))

    def enforce(
        self,
        *,
        rate: float | None = None,
        per_chat: float | None = None,
        random_429: float = 0.0,
        retry_after: int = 1,
        seed: int = 0,
    ) -> None:
        """Answer sends as Telegram does under load: 429 with `retry_after` past `rate` messages in any
        second or `per_chat` a second in one chat, and at random with probability `random_429`."""
        self.rate, self.per_chat, self.random_429, self.retry_after = rate, per_chat, random_429, retry_after
        self._random = random.Random(seed)

    def _limited(self, method: str, params: dict) -> _Failure | None:
        if method not in _SENDS:
            return None
        now = time.monotonic()
        self.attempted_at.append(now)
        chat = params.get("chat_id")
        if chat in self.blocked:
            return _Failure(403)
        if self.random_429 and self._random.random() < self.random_429:
            return _Failure(429, self.retry_after)
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        last = self._chat_last.get(chat)  # type: ignore[arg-type]
        # A tenth of slack per chat: the two requests of one message cross the network at their own pace.
        if (self.rate is not None and len(self._window) >= self.rate) or (
            self.per_chat is not None and last is not None and now - last < 0.9 / self.per_chat
        ):
            self.over_limit += 1
            return _Failure(429, self.retry_after)
        self._window.append(now)
        self._chat_last[chat] = now  # type: ignore[index]
        self.delivered[chat] += 1  # type: ignore[index]
        return None

    async def push(self, update: dict) -> int:
        update.setdefault("update_id", next(self._update_ids))
        async with self._changed:
            self._updates.append(update)
            self._changed.notify_all()
        return update["update_id"]

    # -- realistic updates -------------------------------------------------------------------------
    def new_update_id(self) -> int:
        return next(self._update_ids)

    def message(self, user: dict, chat: dict | None = None, **content: Any) -> dict:
        chat = chat or {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        msg = {"message_id": next(self._user_message_ids), "date": int(time.time()), "chat": chat, "from": user}
        msg.update(content)
        return {"update_id": self.new_update_id(), "message": msg}

    def text(self, user: dict, text: str, chat: dict | None = None) -> dict:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split(" ")[0])}]
        return self.message(user, chat, **content)

    def contact(self, user: dict, phone: str, owner_id: int | None, first_name: str = "小李") -> dict:
        contact: dict[str, Any] = {"phone_number": phone, "first_name": first_name}
        if owner_id is not None:
            contact["user_id"] = owner_id
        return self.message(user, contact=contact)

    def photo(self, user: dict, caption: str | None = None) -> dict:
        sizes = [
            {"file_id": f"photo-{w}", "file_unique_id": f"u{w}", "width": w, "height": w * 3 // 4, "file_size": w * 40}
            for w in (90, 320, 1280)
        ]
        return self.message(user, photo=sizes, **({"caption": caption} if caption else {}))

    def location(self, user: dict, lat: float, lon: float) -> dict:
        return self.message(user, location={"latitude": lat, "longitude": lon})

    def document(self, user: dict, mime: str = "application/pdf") -> dict:
        return self.message(user, document={"file_id": "doc-1", "file_unique_id": "d1", "mime_type": mime})

    def press(self, user: dict, label_part: str | int, message: dict | None = None) -> dict:
        """A tap on a button of the latest bot message with an inline keyboard in this user's chat."""
        message = message or self.last_with_buttons(user["id"])
        buttons = [b for row in message["reply_markup"]["inline_keyboard"] for b in row]
        if isinstance(label_part, int):
            button = buttons[label_part]
        else:
            button = next(b for b in buttons if label_part in b["text"])
        return {
            "update_id": self.new_update_id(),
            "callback_query": {
                "id": str(next(self._query_ids)),
                "from": user,
                "chat_instance": f"ci-{user['id']}",
                "message": json.loads(json.dumps(message)),
                "data": button["callback_data"],
            },
        }

    # -- inspection --------------------------------------------------------------------------------
    def requests(self, method: str | None = None, ok: bool | None = None) -> list[Call]:
        return [
            c for c in self.calls if (method is None or c.method == method) and (ok is None or (c.status == 200) == ok)
        ]

    def sent(self, chat_id: int) -> list[dict]:
        """Messages the bot has in this chat, oldest first, as they read now (after edits)."""
        return [m for (chat, _), m in sorted(self.messages.items()) if chat == chat_id]

    def last_with_buttons(self, chat_id: int) -> dict:
        return next(m for m in reversed(self.sent(chat_id)) if "inline_keyboard" in m.get("reply_markup", {}))

    def labels(self, chat_id: int) -> list[str]:
        """The button labels on the bot's latest message in this chat ([] when it has none)."""
        sent = self.sent(chat_id)
        markup = sent[-1].get("reply_markup", {}) if sent else {}
        return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]

    async def wait_for(self, check: Callable[[], Any], seconds: float = 30) -> Any:
        """Until `check()` is truthy: the bot runs in the background and answers when it does."""

        async def until() -> Any:
            async with self._changed:
                while not (result := check()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(until(), seconds)

    # -- the API -----------------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        raw: dict[str, Any] = dict(request.query)
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            raw.update(await request.json())
        elif request.can_read_body:
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files[name] = value.file.read()
                    if name == "document":  # sendDocument: the name Telegram shows and saves it under
                        raw["document_name"] = value.filename
                else:
                    raw[name] = value
        params: dict[str, Any] = {}
        for name, value in raw.items():
            if isinstance(value, str) and name in _JSON_FIELDS:
                value = json.loads(value)
            elif isinstance(value, str) and name in _INT_FIELDS and value.lstrip("-").isdigit():
                value = int(value)
            params[name] = value
        return params, files

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await self._params(request)
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        failures = self._failures.get(method)
        limited = None if failures else self._limited(method, params)
        if failures or limited:
            f = limited or failures.popleft()  # type: ignore[union-attr]
            description = (f.description or _ERRORS.get(f.status, "Error")).format(retry_after=f.retry_after)
            return await self._record_error(method, params, files, f.status, description, f.retry_after)
        handler = getattr(self, "_m_" + method, None)
        if handler is None:
            return await self._record_error(method, params, files, 404, "Not Found", None)
        if method == "getUpdates":
            result = await handler(params)
        else:
            try:
                result = handler(params, files)
            except _Refused as e:
                return await self._record_error(method, params, files, 400, e.description, None)
        await self._record(Call(method, params, files))
        return web.json_response({"ok": True, "result": result})

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    async def _record_error(self, method, params, files, status, description, retry_after) -> web.Response:  # type: ignore[no-untyped-def]
        await self._record(Call(method, params, files, status))
        return self._error(status, description, retry_after)

    @staticmethod
    def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=status)

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        data = self.files.get(file_id)
        return web.Response(body=data) if data is not None else web.Response(status=404)

    def _bot_user(self) -> dict:
        return {"id": BOT_ID, "is_bot": True, "first_name": "GigUnion", "username": BOT_USERNAME}

    def _new_message(self, params: dict, **content: Any) -> dict:
        chat_id = params["chat_id"]
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
        msg = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": self._bot_user(),
            **content,
        }
        markup = params.get("reply_markup")
        if markup and "inline_keyboard" in markup:
            msg["reply_markup"] = markup
        elif markup:
            self._uneditable.add((chat_id, msg["message_id"]))
        self.messages[(chat_id, msg["message_id"])] = msg
        return msg

    def _m_getMe(self, params: dict, files: dict) -> dict:
        return {**self._bot_user(), "can_join_groups": True, "can_read_all_group_messages": False}

    async def _m_getUpdates(self, params: dict) -> list[dict]:
        offset = params.get("offset") or 0
        # Long polling, briefly: tests should not wait on the bot's own poll timeout.
        wait = min(float(params.get("timeout") or 0), 0.5)
        async with self._changed:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if not self._updates and wait:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            return list(self._updates[: int(params.get("limit") or 100)])

    def _m_sendMessage(self, params: dict, files: dict) -> dict:
        return self._new_message(params, text=params["text"])

    def _m_sendPhoto(self, params: dict, files: dict) -> dict:
        file_id = f"sent-photo-{len(self.files) + 1}"
        self.files[file_id] = files.get("photo", b"")
        photo = [{"file_id": file_id, "file_unique_id": file_id, "width": 320, "height": 320}]
        return self._new_message(params, photo=photo, **({"caption": params["caption"]} if "caption" in params else {}))

    def _m_sendDocument(self, params: dict, files: dict) -> dict:
        file_id = f"sent-document-{len(self.files) + 1}"
        self.files[file_id] = files.get("document", b"")
        document = {"file_id": file_id, "file_unique_id": file_id, "file_size": len(self.files[file_id])}
        # The name as Telegram keeps it: from the multipart part's filename.
        if "document_name" in params:
            document["file_name"] = params["document_name"]
        return self._new_message(params, document=document)

    def _edited(self, params: dict, **content: Any) -> dict | bool:
        """An edit as Telegram makes it: refused on a message sent with a keyboard that is not inline
        (TDLib's can_edit_message), and refused when it would change nothing."""
        key = (params.get("chat_id"), params.get("message_id"))
        msg = self.messages.get(key)
        if msg is None:
            return True
        if key in self._uneditable:
            raise _Refused(CANT_EDIT)
        markup = params.get("reply_markup")
        new_markup = markup if markup and "inline_keyboard" in markup else None
        if all(msg.get(k) == v for k, v in content.items()) and msg.get("reply_markup") == new_markup:
            raise _Refused(NOT_MODIFIED)
        msg.update(content)
        msg.pop("reply_markup", None)
        if new_markup is not None:
            msg["reply_markup"] = new_markup
        msg["edit_date"] = int(time.time())
        return msg

    def _m_editMessageText(self, params: dict, files: dict) -> dict | bool:
        return self._edited(params, text=params["text"])

    def _m_editMessageCaption(self, params: dict, files: dict) -> dict | bool:
        return self._edited(params, caption=params.get("caption", ""))

    def _m_editMessageReplyMarkup(self, params: dict, files: dict) -> dict | bool:
        return self._edited(params)

    def _m_getWebhookInfo(self, params: dict, files: dict) -> dict:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    def _true(self, params: dict, files: dict) -> bool:
        return True

    _m_answerCallbackQuery = _true
    _m_setMyCommands = _true
    _m_setWebhook = _true
    _m_deleteWebhook = _true
    _m_close = _true

    # -- files riders send: getFile, then the bytes at the file path (the media store's fetcher) ----------
    GET_FILE_LIMIT = 20 * 1024 * 1024  # bots may download files up to 20 MB

    @property
    def declared_sizes(self) -> dict[str, int]:
        """A file's size as Telegram reports it, where a test says it is other than its bytes."""
        return self.__dict__.setdefault("_declared_sizes", {})

    def add_file(self, file_id: str, data: bytes, *, size: int | None = None) -> None:
        """Serve `data` for `file_id`; `size` makes it that big as far as getFile is concerned (over
        20 MB, getFile refuses it as Telegram does)."""
        self.files[file_id] = data
        if size is not None:
            self.declared_sizes[file_id] = size

    def _m_getFile(self, params: dict, files: dict) -> dict:
        file_id = params["file_id"]
        if file_id not in self.files:
            raise _Refused("Bad Request: invalid file_id")
        size = self.declared_sizes.get(file_id, len(self.files[file_id]))
        if size > self.GET_FILE_LIMIT:
            raise _Refused("Bad Request: file is too big")
        path = f"files/{file_id}"
        return {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_size": size, "file_path": path}
