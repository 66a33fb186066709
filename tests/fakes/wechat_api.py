"""A fake WeChat server API on 127.0.0.1, and a helper that runs any ASGI app there with uvicorn.

It issues access tokens (only the newest is valid, so `expire_token()` makes the next call meet
40001), records every request, and can be told to answer a path with an error once.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

APPID = "wx0123456789abcdef"
SECRET = "fake-app-secret"


@dataclass
class Call:
    path: str
    params: dict[str, str]
    json: Any = None
    raw: bytes = b""
    token: str | None = None


@dataclass
class FakeWeChatApi:
    appid: str = APPID
    secret: str = SECRET
    calls: list[Call] = field(default_factory=list)
    valid_token: str | None = None
    scripted: dict[str, list[int]] = field(default_factory=dict)
    base: str = ""  # set once serving: "http://127.0.0.1:PORT/cgi-bin/"
    # Temporary media users sent, by MediaId: (bytes, content type). An id not here answers 40007,
    # as WeChat does for an unknown id or one past its 3 days.
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._counter = itertools.count(1)
        self._changed = asyncio.Condition()
        self.app = Starlette(routes=[Route("/cgi-bin/{path:path}", self._handle, methods=["GET", "POST"])])

    # -- scripting and inspecting ---------------------------------------------------------------------
    def expire_token(self) -> None:
        self.valid_token = None

    def fail_once(self, path: str, errcode: int) -> None:
        self.scripted.setdefault(path, []).append(errcode)

    def to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    async def wait_for(self, path: str, count: int = 1) -> list[Call]:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.to(path)) >= count), 20)
        return self.to(path)

    def put_media(self, media_id: str, data: bytes, content_type: str = "image/jpeg") -> None:
        self.media[media_id] = (data, content_type)

    def expire_media(self, media_id: str) -> None:
        self.media.pop(media_id, None)

    # -- the API ----------------------------------------------------------------------------------------
    async def _handle(self, request: Request) -> Response:
        path = request.path_params["path"]
        raw = await request.body()
        params = dict(request.query_params)
        body = None
        if request.headers.get("content-type", "").startswith("application/json"):
            body = json.loads(raw)
        call = Call(path, params, body, raw, params.get("access_token"))
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        return self._answer(call)

    def _answer(self, call: Call) -> Response:
        n = next(self._counter)
        if call.path == "token":
            if call.params.get("appid") != self.appid or call.params.get("secret") != self.secret:
                return JSONResponse({"errcode": 40125, "errmsg": "invalid appsecret"})
            self.valid_token = f"token-{n}"
            return JSONResponse({"access_token": self.valid_token, "expires_in": 7200})
        if call.path == "showqrcode":
            out = io.BytesIO()
            Image.new("RGB", (43, 43), "white").save(out, format="JPEG")
            return Response(out.getvalue(), media_type="image/jpg")
        if call.token is None or call.token != self.valid_token:
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
        if self.scripted.get(call.path):
            return JSONResponse({"errcode": self.scripted[call.path].pop(0), "errmsg": "scripted"})
        if call.path == "media/get":
            return self._media_get(call)
        if call.path == "media/upload":
            return JSONResponse({"type": "image", "media_id": f"media-{n}", "created_at": 1700000000})
        if call.path == "qrcode/create":
            answer = {"ticket": f"TICKET-{n}", "url": f"http://weixin.qq.com/q/fake{n}"}
            if call.json and call.json.get("expire_seconds"):
                answer["expire_seconds"] = call.json["expire_seconds"]
            return JSONResponse(answer)
        if call.path in ("message/custom/send", "menu/create", "message/template/send"):
            return JSONResponse({"errcode": 0, "errmsg": "ok"})
        return JSONResponse({"errcode": 40004, "errmsg": "unknown path"}, status_code=404)

    def _media_get(self, call: Call) -> Response:
        found = self.media.get(call.params.get("media_id", ""))
        if found is None:
            # WeChat labels this JSON as text/plain.
            body = json.dumps({"errcode": 40007, "errmsg": "invalid media_id"})
            return Response(body, media_type="text/plain")
        data, content_type = found
        name = call.params["media_id"] + (".jpg" if content_type == "image/jpeg" else "")
        headers = {"Content-disposition": f'attachment; filename="{name}"'}
        return Response(data, media_type=content_type, headers=headers)


@asynccontextmanager
async def serving(asgi_app: Any) -> AsyncIterator[str]:
    """Run `asgi_app` with uvicorn on 127.0.0.1 (a free port) and yield its base URL."""
    config = uvicorn.Config(asgi_app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def fake_wechat_api() -> AsyncIterator[FakeWeChatApi]:
    fake = FakeWeChatApi()
    async with serving(fake.app) as url:
        fake.base = f"{url}/cgi-bin/"
        yield fake
