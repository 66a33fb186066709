"""The terminal channel: a chat in a TTY, or one input per line when scripted.

Stand-ins for phone actions: `/contact +8613800138000` shares a phone number as Telegram's
share-contact button does, `/photo PATH` sends a picture, `/file PATH` sends a file (a PDF…),
`/location 30.25,120.17` shares a place.
A file the bot sends (a booking's calendar entry) is saved in the current folder and its path printed.
With `--json` every bot message is one JSON line, and `{"turn_end": true}` follows each answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from bot.engine.dispatcher import Dispatcher
from bot.engine.messages import Contact, Incoming, Kind, Media, Outgoing

CHANNEL = "console"


def parse_line(line: str, user: str, lang: str | None) -> Incoming:
    base = {"channel": CHANNEL, "user_id": user, "language_hint": lang, "display_name": user}
    text = line.strip()
    word, _, arg = text.partition(" ")
    arg = arg.strip()
    if word == "/contact" and arg:
        return Incoming(kind=Kind.CONTACT, contact=Contact(phone=arg, owner_id=user), **base)
    if word in ("/photo", "/file") and arg:
        # Read before the turn, like a platform's download (bot.services.media.LocalFiles).
        path = str(Path(arg).expanduser().resolve())
        kind = Kind.PHOTO if word == "/photo" else Kind.DOCUMENT
        return Incoming(kind=kind, media=Media(file_id=path, url=Path(path).as_uri()), **base)
    if word == "/location" and arg:
        try:
            lat, lon = (float(v) for v in arg.replace("，", ",").split(","))
        except ValueError:
            return Incoming(kind=Kind.TEXT, text=text, **base)
        return Incoming(kind=Kind.LOCATION, location=(lat, lon), **base)
    if text.startswith("/") and len(word) > 1:
        return Incoming(kind=Kind.COMMAND, text=word, payload=arg, **base)
    return Incoming(kind=Kind.TEXT, text=line.rstrip("\r\n"), **base)


def save_document(out: Outgoing, folder: Path) -> Path | None:
    """Where the message's file was written, as a phone would save an attachment; None without one."""
    if out.document is None:
        return None
    name, data = out.document
    # The name is ours (a booking reference), but a path in it must never reach outside the folder.
    path = folder / Path(name).name
    path.write_bytes(data)
    return path


def format_text(out: Outgoing, saved: Path | None = None) -> str:
    lines = [out.text] if out.text else []
    if out.image:
        lines.append(f"[image: {len(out.image)} bytes PNG]")
    if saved is not None:
        lines.append(f"[file: {saved}]")
    lines += [f"[{i}] {b.label}" for i, b in enumerate((b for b in out.buttons if b.words is None), 1)]
    lines += [f"[{b.words}] {b.label}" for b in out.buttons if b.words is not None]
    for req in out.requests:
        lines.append(f"({out.request_labels.get(str(req), str(req))}: /{req} …)")
    return "\n".join(lines)


def format_json(out: Outgoing) -> str:
    message = {
        "text": out.text,
        "buttons": [{"label": b.label} for b in out.buttons],
        "requests": [str(r) for r in out.requests],
        "image": base64.b64encode(out.image).decode() if out.image else None,
    }
    if out.document:  # only on the message that carries one, so every other line keeps its shape
        name, data = out.document
        message["document"] = {"name": name, "base64": base64.b64encode(data).decode()}
    return json.dumps(message, ensure_ascii=False)


class ConsoleDeliverer:
    """What the console channel would deliver outside a turn (a broadcast run by a job of this
    process), printed: there is no phone to send it to."""

    channel = CHANNEL

    def __init__(self, stdout: TextIO, as_json: bool = False) -> None:
        self.stdout = stdout
        self.as_json = as_json

    async def deliver(self, user_key: str, message: Outgoing):  # type: ignore[no-untyped-def]
        from bot.services.outbox import SENT

        line = format_json(message) if self.as_json else f"[{user_key}]\n{format_text(message)}\n"
        self.stdout.write(line + "\n")
        self.stdout.flush()
        return SENT


async def run_console(
    dispatcher: Dispatcher,
    user: str,
    lang: str | None,
    as_json: bool,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    files: Path | None = None,
) -> None:
    folder = files or Path.cwd()
    dispatcher.app.deliverers[CHANNEL] = ConsoleDeliverer(stdout, as_json)
    interactive = stdin.isatty() and not as_json
    read: Callable[[], str] = (lambda: _prompt(stdout)) if interactive else stdin.readline
    if interactive:
        stdout.write('GigUnion — 输入“帮助”查看用法，Ctrl-D 退出 / type "help", Ctrl-D to quit\n')
    while True:
        try:
            line = await asyncio.to_thread(read)
        except (EOFError, KeyboardInterrupt):
            break
        if line == "":  # end of input
            break
        for out in await dispatcher.handle(parse_line(line, user, lang)):
            if as_json:
                stdout.write(format_json(out) + "\n")
            else:
                stdout.write(format_text(out, save_document(out, folder)) + "\n\n")
        if as_json:
            stdout.write('{"turn_end": true}\n')
        stdout.flush()


def _prompt(stdout: TextIO) -> str:
    # input()'s own prompt goes to stderr when readline is not loaded; the chat belongs on stdout.
    stdout.write("> ")
    stdout.flush()
    return input() + "\n"
