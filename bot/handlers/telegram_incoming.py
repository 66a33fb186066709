"""Telegram `Update` -> engine `Incoming`: what the rider sent, with nothing of Telegram left in it."""

from __future__ import annotations

from telegram import Bot, Message, Update, User
from telegram.error import BadRequest

from bot.engine.messages import Contact, Incoming, Kind, Media, Refusal
from bot.services.media import MediaRefused

CHANNEL = "telegram"
PRIVATE = "private"


def display_name(user: User) -> str:
    return " ".join(p for p in (user.first_name, user.last_name) if p)


def to_incoming(update: Update) -> Incoming | None:
    """None for updates that carry nothing to answer (edits, chat member changes, a bot's own posts)."""
    user = update.effective_user
    if user is None or user.is_bot:
        return None
    base = {
        "channel": CHANNEL,
        "user_id": str(user.id),
        "dedupe_key": str(update.update_id),
        "language_hint": user.language_code,
        "display_name": display_name(user) or None,
    }
    if update.callback_query is not None:
        return Incoming(kind=Kind.BUTTON, payload=update.callback_query.data or "", **base)
    if update.message is not None:
        return Incoming(**_message_fields(update.message), **base)
    return None


def _message_fields(message: Message) -> dict:  # type: ignore[type-arg]
    if message.contact is not None:
        c = message.contact
        owner = str(c.user_id) if c.user_id else None
        name = " ".join(p for p in (c.first_name, c.last_name) if p) or None
        return {"kind": Kind.CONTACT, "contact": Contact(phone=c.phone_number, owner_id=owner, name=name)}
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return {"kind": Kind.PHOTO, "media": Media(file_id=largest.file_id), "text": message.caption or ""}
    if message.document is not None:
        doc = message.document
        kind = Kind.PHOTO if (doc.mime_type or "").startswith("image/") else Kind.DOCUMENT
        return {
            "kind": kind,
            "media": Media(file_id=doc.file_id, mime_type=doc.mime_type),
            "text": message.caption or "",
        }
    if message.location is not None:  # a shared venue carries its location here too
        return {"kind": Kind.LOCATION, "location": (message.location.latitude, message.location.longitude)}
    text = message.text
    if text is None:
        return {"kind": Kind.OTHER}
    if text.startswith("/") and len(text) > 1:
        word, _, args = text.partition(" ")
        return {"kind": Kind.COMMAND, "text": word, "payload": args.strip()}
    return {"kind": Kind.TEXT, "text": text}


class TelegramFiles:
    """A sent photo's or document's bytes, fetched before its turn: getFile, then the file URL."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def fetch(self, media: Media, max_bytes: int) -> bytes:
        try:
            file = await self.bot.get_file(media.file_id)
        except BadRequest as e:
            # Bots may download files up to 20 MB: getFile answers "file is too big" above that.
            reason = Refusal.TOO_BIG if "too big" in e.message.lower() else Refusal.DOWNLOAD_FAILED
            raise MediaRefused(reason) from None
        if file.file_size is not None and file.file_size > max_bytes:
            raise MediaRefused(Refusal.TOO_BIG)
        data = bytes(await file.download_as_bytearray())
        if len(data) > max_bytes:
            raise MediaRefused(Refusal.TOO_BIG)
        return data
