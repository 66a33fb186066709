"""Talking to the dispatcher as one user would, in tests."""

from __future__ import annotations

import itertools

from bot.engine.dispatcher import Dispatcher
from bot.engine.messages import Contact, Incoming, Kind, Outgoing

_update_ids = itertools.count(1)


class Chat:
    def __init__(self, dispatcher: Dispatcher, user: str = "alice", channel: str = "console", **extra) -> None:  # type: ignore[no-untyped-def]
        self.dispatcher = dispatcher
        self.user = user
        self.channel = channel
        self.extra = extra
        self.last: Outgoing | None = None
        self.history: list[Outgoing] = []

    def incoming(self, kind: Kind, **fields) -> Incoming:  # type: ignore[no-untyped-def]
        return Incoming(channel=self.channel, user_id=self.user, kind=kind, **{**self.extra, **fields})

    async def send(self, incoming: Incoming) -> Outgoing:
        out = await self.dispatcher.handle(incoming)
        assert len(out) == 1
        self.last = out[0]
        self.history.append(out[0])
        return out[0]

    async def say(self, text: str, **fields) -> Outgoing:  # type: ignore[no-untyped-def]
        return await self.send(self.incoming(Kind.TEXT, text=text, **fields))

    async def command(self, word: str, payload: str = "") -> Outgoing:
        return await self.send(self.incoming(Kind.COMMAND, text=word, payload=payload))

    async def contact(self, phone: str, owner: str | None = "self", name: str | None = None) -> Outgoing:
        owner_id = self.user if owner == "self" else owner
        return await self.send(self.incoming(Kind.CONTACT, contact=Contact(phone, owner_id, name)))

    def payload_of(self, label_part: str | int, message: Outgoing | None = None) -> str:
        message = message or self.last
        assert message is not None
        if isinstance(label_part, int):
            return message.buttons[label_part].payload
        matches = [b for b in message.buttons if label_part in b.label]
        assert matches, f"no button with {label_part!r} in {[b.label for b in message.buttons]}"
        return matches[0].payload

    async def tap(self, label_part: str | int, message: Outgoing | None = None) -> Outgoing:
        """Press a button of the last message (or of an older `message`)."""
        payload = self.payload_of(label_part, message)
        return await self.send(self.incoming(Kind.BUTTON, payload=payload))

    def labels(self) -> list[str]:
        assert self.last is not None
        return [b.label for b in self.last.buttons]


async def join(chat: Chat, phone: str = "13800138000", name: str = "张三", *, source: str = "") -> Outgoing:
    """The whole join flow, by taps where there are buttons."""
    await chat.command("/start", f"join-{source}" if source else "")
    await chat.tap(0)  # agree
    await chat.contact(phone)
    await chat.say(name)
    await chat.tap(0)  # first platform
    await chat.tap(0)  # first kind of work
    return await chat.tap(0)  # confirm
