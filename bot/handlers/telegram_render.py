"""Engine `Outgoing` -> Telegram messages: inline keyboards for choices, a reply keyboard for the
share-phone and share-location buttons, a photo before its text, and tidying the message whose
button was pressed.

A message carries one keyboard, and Telegram never lets a message sent with a reply keyboard (or with
its removal) be edited, so an inline keyboard is never added to such a message afterwards: where
both are needed they go in messages of their own."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.constants import InlineKeyboardButtonLimit, MessageLimit
from telegram.error import BadRequest

from bot.engine.messages import OutButton, Outgoing, Request

log = logging.getLogger(__name__)

Pace = Callable[[], Awaitable[None]]
# Shown only when a message would otherwise have no text, which Telegram refuses; no words needed.
POINTER = "👇"
_KEYBOARD_REQUESTS = (Request.CONTACT, Request.LOCATION)


async def _no_pace() -> None:
    return None


def inline_keyboard(buttons: Sequence[OutButton]) -> InlineKeyboardMarkup | None:
    fitting = []
    for b in buttons:
        if len(b.payload.encode()) > InlineKeyboardButtonLimit.MAX_CALLBACK_DATA:
            log.warning("button payload over 64 bytes dropped")
            continue
        fitting.append(InlineKeyboardButton(b.label, callback_data=b.payload))
    if not fitting:
        return None
    # Long lists of short labels (platforms, kinds of work) read better two by two on a phone.
    per_row = 2 if len(fitting) > 3 and all(len(b.text) <= 8 for b in fitting) else 1
    return InlineKeyboardMarkup([fitting[i : i + per_row] for i in range(0, len(fitting), per_row)])


def request_keyboard(out: Outgoing) -> ReplyKeyboardMarkup | None:
    rows = []
    for req in out.requests:
        if req in _KEYBOARD_REQUESTS:
            label = out.request_labels.get(str(req), POINTER)
            contact, location = req is Request.CONTACT, req is Request.LOCATION
            rows.append([KeyboardButton(label, request_contact=contact or None, request_location=location or None)])
    if not rows:
        return None
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=True)


def chunks(text: str, size: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] if text else []


class Renderer:
    """Sends one `Outgoing` to a chat. Remembers in which chats a reply keyboard is up, so the next
    message takes it away once it has been used."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._keyboard_up: set[int] = set()

    async def send(self, chat_id: int, out: Outgoing, pace: Pace = _no_pace) -> None:
        if out.image:
            await pace()
            await self.bot.send_photo(chat_id, photo=out.image, filename="image.png")
        if out.document:
            # Before the text, as the photo is: the words (the time, the place) are what is read last.
            name, data = out.document
            await pace()
            await self.bot.send_document(chat_id, document=data, filename=name)
        inline = inline_keyboard(out.buttons)
        asking = request_keyboard(out)
        parts = chunks(out.text) or ([POINTER] if inline or asking else [])
        if not parts:
            return
        for part in parts[:-1]:
            await pace()
            await self.bot.send_message(chat_id, part)
        last = parts[-1]
        await pace()
        if asking is not None:
            # A message carries one keyboard: the choices go with the text, the phone buttons after.
            if inline is not None:
                await self.bot.send_message(chat_id, last, reply_markup=inline)
                await pace()
                last = POINTER
            await self.bot.send_message(chat_id, last, reply_markup=asking)
            self._keyboard_up.add(chat_id)
        elif chat_id in self._keyboard_up:
            if inline is None:
                await self.bot.send_message(chat_id, last, reply_markup=ReplyKeyboardRemove())
            else:
                # The removal rides on the lead-in where there is one (what was done, then the
                # question), else on the question, with the choices under a pointer of their own.
                lead, _, question = last.rpartition("\n\n")
                await self.bot.send_message(chat_id, lead or last, reply_markup=ReplyKeyboardRemove())
                await pace()
                await self.bot.send_message(chat_id, question if lead else POINTER, reply_markup=inline)
            self._keyboard_up.discard(chat_id)
        else:
            await self.bot.send_message(chat_id, last, reply_markup=inline)

    async def settle_pressed(self, query: CallbackQuery, mark: Callable[[str, str], str]) -> None:
        """Take the keyboard off the message whose button was pressed, noting which one it was, so
        the chat reads as a conversation and old buttons cannot be pressed again."""
        msg = query.message
        if not isinstance(msg, Message) or msg.reply_markup is None:
            return
        label = next(
            (b.text for row in msg.reply_markup.inline_keyboard for b in row if b.callback_data == query.data), None
        )
        # Choices under a bare pointer become just the choice made.
        text = "" if msg.text == POINTER else msg.text
        try:
            marked = mark(text, label) if msg.text and label else ""
            if marked and len(marked) <= MessageLimit.MAX_TEXT_LENGTH:
                await self.bot.edit_message_text(marked, chat_id=msg.chat_id, message_id=msg.message_id)
            else:
                await self.bot.edit_message_reply_markup(chat_id=msg.chat_id, message_id=msg.message_id)
        except BadRequest:
            # Already tidied (a second tap), or too old to edit: the message can stay as it is.
            log.debug("pressed message %s left unedited", msg.message_id)
